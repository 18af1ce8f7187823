"""`dreamlab quality`: run the quality measures against their goals (exit 1 when one is missed)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from typing import TYPE_CHECKING, Any

from dreamlab.apps.args import LIST_ONCE, add_once_option, given_options
from dreamlab.apps.quality.names import DIGITS_MEASURES, HED_UNITS_MAX, MEASURES, SETTINGS_NAMES
from dreamlab.errors import DreamlabError, unknown

if TYPE_CHECKING:
    from dreamlab.apps.quality.measures import QualitySettings


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_once_option(p, "--measures", default=",".join(MEASURES), once=LIST_ONCE,
                   help="comma-separated subset of: " + ", ".join(MEASURES) + " (default: all)")
    p.add_argument("--steps", type=int, help="steps of the digits renders: transfer, dataset, kept (default: the "
                                             "lenet-digits recipe's, 256, also with --fast)")
    p.add_argument("--planted-steps", type=int, help="steps of the planted renders (default: 1024; 512 with --fast)")
    p.add_argument("--fast", action="store_true",
                   help="the small version the tests run, same goals: 10 of the 50 conv2 channels (dataset, kept; "
                        "the logits as in the full measure, 256 steps), 2 planted cells at 512 steps instead of 16 "
                        "at 1024, hed-vgg16 2 units per layer at 48 steps instead of 4 at 256")
    p.add_argument("--hed-units", type=int,
                   help="units per layer (features.15, .22, .29) of the hed-vgg16 natural-image measure (default: 4, "
                        "2 with --fast; 64 is the full measure, hours on a CPU)")
    p.add_argument("--hed-steps", type=int,
                   help="steps of the hed-vgg16 natural-image renders (default: the recipe's, 256; 48 with --fast)")
    p.add_argument("--settings", default="recipe", choices=SETTINGS_NAMES,
                   help="render with the recipes' settings (default), with lucid's optimizer and 1/f scale "
                        "(Adam, Fourier decay 1) on the recipes' other settings, adversarial-style (pixel, no "
                        "transforms, no decorrelation; planted cells keep their own), or MACO (--param maco, Adam at "
                        "lr 0.3; planted cells keep theirs), to compare (QUALITY.md)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu, where the goals were set)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default: 1; the renders are tiny, and on a busy machine more "
                        "threads make them several times slower)")
    p.add_argument("--json", action="store_true", help="print the measures as JSON instead of a table")


# the options that only some measures read: a run without any of them refuses the option
READ_BY = {"--steps": DIGITS_MEASURES, "--planted-steps": ("planted",), "--hed-units": ("natural",),
           "--hed-steps": ("natural",), "--fast": ("dataset", "kept", "planted", "natural")}


def _check_options(args: argparse.Namespace, names: list[str]) -> None:
    """Refuse, before any work, bad numbers and options that none of the chosen measures reads."""
    for value, flag in ((args.steps, "--steps"), (args.planted_steps, "--planted-steps"), (args.threads, "--threads"),
                        (args.hed_units, "--hed-units"), (args.hed_steps, "--hed-steps")):
        if value is not None and value < 1:
            raise DreamlabError(f"{flag} must be a positive integer, got {value}")
    cores = os.cpu_count() or 1
    if args.threads > cores:  # more threads than cores only slow torch down; a huge count crashes it
        raise DreamlabError(f"--threads must be from 1 to {cores} (this machine's CPU cores), got {args.threads}; "
                            f"the default 1 suits the tiny renders")
    if args.hed_units is not None and args.hed_units > HED_UNITS_MAX:
        raise DreamlabError(f"--hed-units must be from 1 to {HED_UNITS_MAX} (the channels of features.15, the "
                            f"narrowest layer measured), got {args.hed_units}; 64 is the full measure")
    given = given_options(args, [flag[2:].replace("-", "_") for flag in READ_BY])
    for flag, readers in READ_BY.items():
        if flag in given and not set(readers) & set(names):
            one = len(readers) == 1
            raise DreamlabError(f"{flag} applies to the {', '.join(readers)} measure{'' if one else 's'}, and "
                                f"--measures {','.join(names)} {'does not run it' if one else 'runs none of them'}: "
                                f"add {'it' if one else 'one'} to --measures, or leave {flag} out")


def run(args: argparse.Namespace) -> int:
    import torch

    from dreamlab.apps.quality import measures as quality
    from dreamlab.apps.quality.measures import FAST, SETTINGS_PRESETS, QualitySettings, format_report
    from dreamlab.devices import resolve_device

    names = [n.strip() for n in args.measures.split(",") if n.strip()]
    if not names:
        raise DreamlabError(f"--measures {args.measures!r} names no measure; valid: {', '.join(MEASURES)} "
                            f"(comma-separated)")
    bad = [n for n in names if n not in MEASURES]
    if bad:
        raise unknown("quality measure", bad[0], MEASURES)
    _check_options(args, names)
    resolve_device(args.device)  # a bad device is refused before the first render
    torch.set_num_threads(args.threads)
    base = FAST if args.fast else QualitySettings()
    settings = dataclasses.replace(base, **SETTINGS_PRESETS[args.settings])

    def given_or(value: int | None, default: Any) -> Any:
        return value if value is not None else default

    settings = dataclasses.replace(settings, seed=args.seed, device=args.device,
                                   steps=given_or(args.steps, base.steps),
                                   planted_steps=given_or(args.planted_steps, base.planted_steps),
                                   hed_units=given_or(args.hed_units, base.hed_units),
                                   hed_steps=given_or(args.hed_steps, base.hed_steps))
    measures = quality.run_measures(names, settings, progress=True)
    if args.json:
        print(json.dumps({"settings": _settings_dict(settings), "measures": [m.as_dict() for m in measures]},
                         indent=1))
    else:
        print(format_report(measures, settings))
    return 0 if all(m.passed for m in measures) else 1


def _settings_dict(settings: QualitySettings) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, (range, tuple)) else v for k, v in dataclasses.asdict(settings).items()}
