import pytest

from colorful_world.core.config import TrainConfig
from colorful_world.inference.evaluate import calibrate_chroma, evaluate
from colorful_world.training.train import train

pytestmark = pytest.mark.slow  # a training of 400 steps: left out of the quick subset


def test_trained_generator_beats_the_mean_colour_on_held_out_photos(synthetic_folder, tmp_path):
    # 400 steps of a 0.4M-parameter U-Net: the last 5 epochs adversarial, so both phases run.
    config = TrainConfig(data=str(synthetic_folder), out=str(tmp_path / "run"), epochs=40, l1_epochs=35,
                         arch="unet", image_size=32, batch_size=16, base_channels=16, depth=4, dropout=0.0,
                         disc_channels=16, lr=1e-3, ema_decay=0.99, val_fraction=0.2, save_every=10_000,
                         min_colourfulness=1.0, cache_dir=str(tmp_path / "cache"))
    model = train(config, progress=False)
    results = evaluate(model, str(synthetic_folder), tmp_path / "cache", progress=False)
    ours, mean, grey = results["model"], results["mean_colour"], results["grey"]
    assert ours["photos"] == 40
    assert ours["ab_l1"] < 0.6 * mean["ab_l1"]
    assert ours["psnr"] > max(mean["psnr"], grey["psnr"]) + 3.0
    assert ours["colourfulness_ratio"] > 0.5
    assert (tmp_path / "run" / "metrics.png").stat().st_size > 0
    assert len(list((tmp_path / "run" / "samples").glob("epoch_*.png"))) == 40

    # Scored at twice its size, as a bigger photo is colorized: still well ahead of the baselines.
    larger = evaluate(model, str(synthetic_folder), tmp_path / "cache", progress=False, size=64)
    assert larger["model"]["photos"] == 40 and larger["model"]["psnr"] != ours["psnr"]
    assert larger["model"]["ab_l1"] < 0.6 * larger["mean_colour"]["ab_l1"]

    # The chroma gain calibrated on the training photos brings the held-out colour nearer the truth's.
    gain = calibrate_chroma(model, str(synthetic_folder), tmp_path / "cache", progress=False)
    calibrated = evaluate(model, str(synthetic_folder), tmp_path / "cache", progress=False, chroma_gain=gain)["model"]
    assert abs(calibrated["colourfulness_ratio"] - 1) < abs(ours["colourfulness_ratio"] - 1)
