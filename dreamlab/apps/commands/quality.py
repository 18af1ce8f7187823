"""`dreamlab quality`: run the quality measures against their goals (exit 1 when one is missed)."""
from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

import torch

from dreamlab.apps.quality import measures as quality
from dreamlab.apps.quality.natural import HED_UNITS_MAX
from dreamlab.apps.quality.measures import FAST, MEASURES, SETTINGS_PRESETS, QualitySettings, format_report
from dreamlab.errors import DreamlabError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--measures", default=",".join(MEASURES),
                   help="comma-separated subset of: " + ", ".join(MEASURES) + " (default: all)")
    p.add_argument("--steps", type=int, help="steps of the digits renders (default: the recipe's, 256)")
    p.add_argument("--planted-steps", type=int, help="steps of the planted renders (default: 1024)")
    p.add_argument("--fast", action="store_true",
                   help="the small version the tests run: fewer steps, units and planted cells (same goals)")
    p.add_argument("--hed-units", type=int, default=4,
                   help="units per layer (features.15, .22, .29) of the hed-vgg16 natural-image measure (default: 4; "
                        "64 is the full measure, hours on a CPU)")
    p.add_argument("--settings", default="recipe", choices=sorted(SETTINGS_PRESETS),
                   help="render with the recipes' settings (default), with lucid's optimizer and 1/f scale "
                        "(Adam, Fourier decay 1) on the recipes' other settings, or adversarial-style (pixel, no "
                        "transforms, no decorrelation; planted cells keep their own), to compare (QUALITY.md)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu, where the goals were set)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default: 1; the renders are tiny, and on a busy machine more "
                        "threads make them several times slower)")
    p.add_argument("--json", action="store_true", help="print the measures as JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.measures.split(",") if n.strip()]
    if not names:
        raise DreamlabError(f"--measures {args.measures!r} names no measure; valid: {', '.join(MEASURES)} "
                            f"(comma-separated)")
    for value, flag in ((args.steps, "--steps"), (args.planted_steps, "--planted-steps"), (args.threads, "--threads"),
                        (args.hed_units, "--hed-units")):
        if value is not None and value < 1:
            raise DreamlabError(f"{flag} must be a positive integer, got {value}")
    if args.hed_units > HED_UNITS_MAX:
        raise DreamlabError(f"--hed-units must be from 1 to {HED_UNITS_MAX} (the channels of features.15, the "
                            f"narrowest layer measured), got {args.hed_units}; 64 is the full measure")
    torch.set_num_threads(args.threads)
    base = FAST if args.fast else QualitySettings()
    settings = dataclasses.replace(base, **SETTINGS_PRESETS[args.settings])
    settings = dataclasses.replace(settings, seed=args.seed, device=args.device, hed_units=args.hed_units,
                                   steps=args.steps if args.steps is not None else base.steps,
                                   planted_steps=args.planted_steps if args.planted_steps is not None
                                   else base.planted_steps)
    measures = quality.run_measures(names, settings)
    if args.json:
        print(json.dumps({"settings": _settings_dict(settings), "measures": [m.as_dict() for m in measures]},
                         indent=1))
    else:
        print(format_report(measures, settings))
    return 0 if all(m.passed for m in measures) else 1



def _settings_dict(settings: QualitySettings) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, (range, tuple)) else v for k, v in dataclasses.asdict(settings).items()}
