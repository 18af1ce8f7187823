"""`dreamlab bench`: time fixed render workloads (and the peers, in the same run); prints JSON lines."""
from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from dreamlab.apps.args import (add_compile_argument, add_device_argument, add_given_option,
                                given_options, input_path, positive_int)
from dreamlab.errors import DreamlabError, permission_denied
from dreamlab.optvis.choices import PARAM_NAMES, TRANSFORM_PRESETS

if TYPE_CHECKING:
    from dreamlab.apps.bench import PeerPlan


# the models the unit and layer workloads render, with their units: apps/bench.py's BENCH_MODELS (a test keeps the
# two equal; this module stays free of torch so that --help is fast)
BENCH_MODEL_NAMES = {"googlenet": "inception4c:97, torch-dreams' unit in the peer benchmark",
                     "inceptionv1": "mixed4a:476, lucid's InceptionV1 and the unit lucent renders there"}


def bench_model_name(text: str) -> str:
    """argparse type of --model: one of BENCH_MODEL_NAMES, else one line that lists them (and the closest)."""
    if text in BENCH_MODEL_NAMES:
        return text
    close = difflib.get_close_matches(text.lower(), BENCH_MODEL_NAMES, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    valid = "; ".join(f"{name} ({unit})" for name, unit in BENCH_MODEL_NAMES.items())
    raise argparse.ArgumentTypeError(f"{text!r} is not a model bench renders; {hint}valid: {valid}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_given_option(p, "--model", "-m", default="googlenet", type=bench_model_name,
                     help="random-weight model of the unit and layer workloads: googlenet (torchvision's; "
                          "inception4c:97 and inception4c:0-<units-1>) or inceptionv1 (lucid's, the model lucent "
                          "renders in the peer benchmark: mixed4a:476 and mixed4a:0-<units-1>) (default: %(default)s)")
    add_given_option(p, "--workload", default="both", choices=["unit", "layer", "both", "dream"],
                     help="both: unit and layer; dream: DeepDream at 1024x768, --steps steps (try 10)")
    p.add_argument("--steps", type=positive_int, default=512,
                   help="steps per render; the dream workload dreams one octave of this many (default: %(default)s)")
    p.add_argument("--size", type=positive_int, help="image size of the unit and layer workloads (default: 224)")
    p.add_argument("--units", type=int, help="units of the layer workload, 1 to the layer's width (default: all of "
                                               "them: googlenet's inception4c has 512, inceptionv1's mixed4a 508)")
    add_device_argument(p)
    # add_given_option: these have defaults, and the dream workload must still tell whether they were given
    add_given_option(p, "--precision", default="auto", choices=["auto", "fp32", "bf16"],
                     help="autocast of dreamlab's renders; auto: bf16 on cuda, fp32 elsewhere (default: %(default)s)")
    add_given_option(p, "--param", default="fourier", choices=sorted(PARAM_NAMES),
                     help="image parameterization of dreamlab's renders (default: %(default)s)")
    add_given_option(p, "--transforms", default="standard", choices=sorted(TRANSFORM_PRESETS),
                     help="transform preset of dreamlab's renders (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, help="units per batch (default: all)")
    add_compile_argument(p, "each workload is then rendered twice and the warm-up reported as warmup_s")
    p.add_argument("--peer-bench", type=input_path, metavar="PEER_BENCH_PY",
                   help="also run this peer benchmark (../shared/bench/peer_bench.py) in the same run and print the "
                        "ratios. It gets dreamlab's --steps, --size and device (on the CPU, its thread count too); "
                        "everything else is the peers' own: lucent renders mixed4a of its InceptionV1 (batch 1: "
                        "unit 476; batch N: N channels; --model inceptionv1 renders the same model and unit) in fp32 "
                        "with its default image (FFT, decorrelated colour) and transforms, torch-dreams "
                        "inception4c:97 of GoogLeNet in fp32 at batch 1, the ceiling a bare GoogLeNet fwd+bwd for "
                        "20 steps at batches 1-256 (on cuda also in tf32 and bf16). "
                        "--precision, --param, --transforms, --units and --batch-size change dreamlab's side only "
                        "(the defaults fourier and standard are lucent's kind of image and transforms; --precision "
                        "auto is bf16 on cuda, against the peers' fp32)")
    add_given_option(p, "--peer-site", type=input_path, default=Path("/tmp/peers_site"),
                     help="where setup_peers.sh installed lucent and torch-dreams (default: %(default)s)")
    add_given_option(p, "--peer-batches", default="1",
                     help="lucent's batch sizes to time, comma-separated (default: 1); the unit workload is "
                          "compared with batch 1, the layer workload with the fastest")
    add_given_option(p, "--peer-parts", default="lucent",
                     help="what the peer benchmark runs, comma-separated: ceiling (bare GoogLeNet fwd+bwd, against "
                          "the layer workload), lucent (against unit and layer), dreams (torch-dreams, against the "
                          "unit workload) (default: lucent)")
    p.add_argument("--ablation", action="store_true",
                   help="instead of the workloads: time googlenet's inception4c:0-<units-1> with each speed-up "
                        "switched off alone (early stop, one gather, precision, layout, optimizer; --compile adds "
                        "compile)")


PEER_OPTIONS = ("peer_site", "peer_batches", "peer_parts")
DREAM_FIXED = ("model", "size", "units", "batch_size", "compile", "peer_bench", "ablation", "precision", "param",
               "transforms", *PEER_OPTIONS)  # the dream workload's own
ABLATION_IGNORES = ("model", "workload", "precision", "param", "transforms", "batch_size", "peer_bench",
                    *PEER_OPTIONS)


def _unused_options(args: argparse.Namespace) -> None:
    """Refuse the options the chosen benchmark would ignore: the dream workload is one fixed DeepDream, the
    ablation times its own variants, the peer options need --peer-bench, and the unit workload is one unit."""
    def refuse(given: list[str], why: str) -> None:
        if given:
            raise DreamlabError(f"{why}: {', '.join(given)} do{'es' if len(given) == 1 else ''} not apply to it")

    if args.workload == "dream":
        refuse(given_options(args, DREAM_FIXED), "--workload dream times a fixed DeepDream of 1024x768 on "
                                                 "googlenet's inception4c")
    if args.ablation:
        refuse(given_options(args, ABLATION_IGNORES), "--ablation times googlenet's inception4c:0-<units-1> with "
                                                      "each speed-up switched off alone")
    peer = given_options(args, PEER_OPTIONS) if args.peer_bench is None else []
    if peer:
        one = len(peer) == 1
        raise DreamlabError(f"{', '.join(peer)} configure{'s' if one else ''} the peer benchmark: add --peer-bench "
                            f"PEER_BENCH_PY, or leave {'it' if one else 'them'} out")
    if args.workload == "unit" and not args.ablation:
        refuse(given_options(args, ["units", "batch_size"]), "--workload unit renders one unit")


def _unused_peer_options(args: argparse.Namespace, plan: PeerPlan) -> None:
    """Refuse --peer-batches without lucent and --peer-site without a part that imports from it."""
    if args.peer_batches_given and "lucent" not in plan.parts:
        raise DreamlabError("--peer-batches sets lucent's batch sizes: add lucent to --peer-parts, or leave "
                            "--peer-batches out")
    from dreamlab.apps.bench import PEER_PACKAGES

    if args.peer_site_given and not set(plan.parts) & set(PEER_PACKAGES):
        raise DreamlabError("--peer-site is where lucent and torch-dreams are imported from, and the ceiling imports "
                            "neither: add lucent or dreams to --peer-parts, or leave --peer-site out")


def run(args: argparse.Namespace) -> int:
    import torch

    from dreamlab.apps.bench import (BENCH_MODELS, PeerBenchFailed, bench_dream, bench_workload, check_bench_size,
                                     check_peer_options, peer_device_env, ratios, run_ablation, run_peer_bench)
    from dreamlab.devices import resolve_device

    _unused_options(args)
    spec = BENCH_MODELS[args.model]
    args.size = args.size if args.size is not None else 224
    args.units = args.units if args.units is not None else spec.channels
    if not 1 <= args.units <= spec.channels:
        raise DreamlabError(f"--units must be between 1 and {spec.channels} ({spec.layer} of {args.model} has "
                            f"{spec.channels} channels), got {args.units}")
    check_bench_size(args.size)
    if args.peer_bench and not args.peer_bench.is_file():
        what = "is a folder, not the script" if args.peer_bench.is_dir() else "not found"
        raise DreamlabError(f"peer benchmark {str(args.peer_bench)!r} {what}; give the path of the team's "
                            f"peer_bench.py (in this workplace ../shared/bench/peer_bench.py)")
    if args.peer_bench and not os.access(args.peer_bench, os.R_OK):  # refused before the renders, not after
        raise permission_denied("peer benchmark", args.peer_bench)
    workloads = ["unit", "layer"] if args.workload == "both" else [args.workload]
    if args.peer_bench:
        plan = check_peer_options(args.peer_bench, args.peer_site, args.peer_parts, args.peer_batches, workloads)
        _unused_peer_options(args, plan)
    device = resolve_device(args.device)
    if args.peer_bench:
        peer_device_env(device)  # refuses a device the peers cannot run on, before any render
    print(json.dumps({"what": "env", "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}), flush=True)
    if args.ablation:
        for line in run_ablation(steps=args.steps, size=args.size, units=args.units, device=device,
                                 compile=args.compile):
            print(json.dumps(line), flush=True)
        return 0
    ours = {}
    if args.workload == "dream":
        print(json.dumps(bench_dream(steps=args.steps, device=device)), flush=True)
        return 0
    for workload in workloads:
        figures = bench_workload(workload, steps=args.steps, size=args.size, units=args.units, device=device,
                                 precision=args.precision, param=args.param, transforms=args.transforms,
                                 batch_size=args.batch_size, compile=args.compile, model=args.model)
        ours[workload] = figures
        print(json.dumps(figures), flush=True)
    if args.peer_bench:
        try:
            peers = run_peer_bench(args.peer_bench, args.peer_site, steps=args.steps, size=args.size,
                                   batches=",".join(map(str, plan.batches)), parts=",".join(plan.parts),
                                   device=device)
        except PeerBenchFailed as exc:  # dreamlab's figures are printed; say why the peer's are missing
            found = ratios(ours, exc.lines)
            if found:
                print(json.dumps(_ratios_line(args.model, found)), flush=True)
            print(f"dreamlab: error: {exc}", file=sys.stderr)
            return exc.exit_code  # 1: a failure at run time, the figures above stand
        print(json.dumps(_ratios_line(args.model, ratios(ours, peers))), flush=True)
    return 0


def _ratios_line(model: str, found: dict[str, float]) -> dict:
    """The ratios' JSON line: dreamlab's model, the ratios, and which of them compare the same model and layer."""
    from dreamlab.apps.bench import same_model_and_layer

    return {"what": "ratios", "model": model, **found, "same_model_and_layer": same_model_and_layer(model, found)}
