"""The units the networks see, for numpy arrays and torch tensors alike (no torch import here):
L scaled to [-1, 1], and ab divided by AB_SCALE so that a tanh output covers the sRGB gamut."""

AB_SCALE = 110.0  # |a|, |b| of sRGB colours stay below ~108


def normalize_l(light):
    """L in [0, 100] -> the generator's input range [-1, 1]."""
    return light / 50.0 - 1.0
