"""The render's named choices that the command line and recipe files check before torch loads (`dreamlab render
--help` stays fast): torch.compile's modes, the precisions, and the names of the parameterizations, optimizers and
transforms presets. `settings` checks values against them; tests keep the last three equal to the tables of
params.py, optimizers.py and transforms.py."""
from __future__ import annotations

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's
PRECISIONS = ("auto", "fp32", "bf16")
PARAM_NAMES = ("pixel", "fourier", "maco")
OPTIMIZER_NAMES = ("channel-adam", "adam")
TRANSFORM_PRESETS = ("standard", "small", "jitter", "none")
