"""The quality command's names, torch-free so that `dreamlab quality --help` and its argument checks run before
torch loads: the measures, the settings presets, and the most hed-vgg16 units a layer has. measures.py and
natural.py take them from here."""
from __future__ import annotations

MEASURES = ("transfer", "dataset", "kept", "planted", "natural")
DIGITS_MEASURES = ("transfer", "dataset", "kept")  # the measures that render lenet-digits (--steps)
SETTINGS_NAMES = ("adversarial", "lucid", "maco", "recipe")  # measures.SETTINGS_PRESETS' keys, sorted
HED_UNITS_MAX = 256  # features.15's channels, the fewest of natural.HED_LAYERS
