"""The render's named choices that the command line lists before torch loads (`dreamlab render --help` stays
fast): torch.compile's modes and the precisions. `settings` checks values against them."""
from __future__ import annotations

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's
PRECISIONS = ("auto", "fp32", "bf16")
