"""The core: colour conversions and units, settings, training data, metrics, device and precision, plots. Imports only io."""
