"""`dreamlab bench`: time fixed render workloads and print one JSON line per measurement.

Workloads on a random-weight model (speed does not depend on the weights): torchvision GoogLeNet by default, or
lucid's InceptionV1 (`--model inceptionv1`), the model and unit lucent renders in the shared peer benchmark:
- unit:  `inception4c:97` (inceptionv1: `mixed4a:476`), one image;
- layer: `inception4c:0-<units-1>` (inceptionv1: `mixed4a:0-<units-1>`), the layer's channels rendered together.
- dream: DeepDream (`dreamlab dream`) on a 1024x768 image, one octave on GoogLeNet's inception4c (ms per step).

image-steps/s = images optimized in parallel x steps / seconds, the unit of ../shared/bench/peer_bench.py.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from dreamlab.errors import DreamlabError


@dataclass(frozen=True)
class BenchModel:
    """A model the unit and layer workloads render: the layer, the unit workload's unit, the layer's width."""

    layer: str
    unit: int
    channels: int


# inception4c:97 is the unit torch-dreams renders in ../shared/bench/peer_bench.py, mixed4a:476 (lucid's tutorial
# unit) the one lucent renders there; commands/bench.py keeps their names for --help (BENCH_MODEL_NAMES)
BENCH_MODELS = {"googlenet": BenchModel("inception4c", 97, 512), "inceptionv1": BenchModel("mixed4a", 476, 508)}
# the model each peer part renders (peer_bench.py): a ratio compares like with like only where it is dreamlab's;
# the ceiling is a bare fwd+bwd, not a render
PEER_MODELS = {"lucent": "inceptionv1", "dreams": "googlenet", "ceiling": None}
RATIO_PEERS = {"unit_vs_lucent_1": "lucent", "layer_vs_lucent_best_batched": "lucent",
               "unit_vs_torch_dreams": "dreams", "layer_vs_best_fwd_bwd_ceiling": "ceiling"}


def bench_objective(model: str, workload: str, units: int) -> str:
    """The objective a unit or layer workload renders on `model` (a BENCH_MODELS name)."""
    spec = BENCH_MODELS[model]
    return f"{spec.layer}:{spec.unit}" if workload == "unit" else f"{spec.layer}:0-{units - 1}"


def same_model_and_layer(model: str, found: Mapping[str, float]) -> list[str]:
    """The ratios among `found` whose two sides render the same model at the same layer (the unit ratios: the same
    unit, as BENCH_MODELS takes each model's unit from the peer that renders it)."""
    return [name for name in found if PEER_MODELS[RATIO_PEERS[name]] == model]


def check_bench_size(size: int) -> None:
    """--size within the bound every command shares, refused before the model is built."""
    from dreamlab.models.summary import check_input_size

    check_input_size(size, 32, "--size")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_render(device: torch.device, *args, **kwargs):
    """(RenderResult, seconds) of one render, with the device idle at both ends; resets CUDA's peak memory."""
    from dreamlab.optvis.engine import render

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    start = time.perf_counter()
    result = render(*args, device=device, **kwargs)
    _sync(device)
    return result, time.perf_counter() - start


def bench_workload(workload: str, *, steps: int, size: int, units: int, device: torch.device, precision: str,
                   param: str, transforms: str, batch_size: int | None, compile: str | None = None,
                   model: str = "googlenet") -> dict:
    """Render one workload of `model` (a BENCH_MODELS name) end to end and return its figures.

    With `compile` the workload is rendered twice in this process: the first render pays the compile warm-up,
    the second reuses it; the figures are the second's, and `warmup_s` is the difference.
    """
    from dreamlab.models.loading import load_model

    check_bench_size(size)
    loaded = load_model(model, weights="none")  # random init draws from its own fixed seed
    objective = bench_objective(model, workload, units)
    n = 1 if workload == "unit" else units
    settings = dict(steps=steps, size=size, precision=precision, param=param, transforms=transforms,
                    batch_size=batch_size, compile=compile or False)
    result, seconds = _timed_render(device, loaded, objective, **settings)
    first_seconds = None
    if compile:
        first_seconds = seconds
        result, seconds = _timed_render(device, loaded, objective, **settings)
    cpu = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    figures = {
        "what": f"dreamlab_{workload}",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
        "model": model, "objective": objective, "units": n, "steps": steps, "size": size,
        "precision": result.provenance["dreamlab:precision"],
        "param": param, "transforms": transforms, "compile": compile or "no",
        "seconds": round(seconds, 3),
        "ms_per_step": round(1000 * seconds / steps, 3),
        "images_per_s": float(f"{n * steps / seconds:.4g}"),  # 4 significant digits: slow CPU runs are below 1
    }
    if first_seconds is not None:
        figures.update(first_render_s=round(first_seconds, 3), warmup_s=round(first_seconds - seconds, 3))
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        figures.update(peak_gpu_mb=round(peak, 1), peak_gpu_mb_per_unit=round(peak / n, 2))
    else:
        figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return figures


def bench_dream(*, steps: int, device: torch.device, size: tuple[int, int] = (768, 1024)) -> dict:
    """DeepDream on a smooth 1024x768 image (a photo stand-in): one octave of `steps` steps on inception4c of
    random-weight GoogLeNet, in one piece; ms per step between the first step's end and the last's (so the
    checks and the scores before and after are left out; `seconds` has them), the whole run when `steps` is 1."""
    from dreamlab.models.loading import load_model
    from dreamlab.optvis.dream import dream

    loaded = load_model("googlenet", weights="none")  # random init draws from its own fixed seed
    coarse = torch.rand(1, 3, size[0] // 32, size[1] // 32, generator=torch.Generator().manual_seed(0))
    photo = torch.nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False)[0]
    dream(loaded, photo, "inception4c", octaves=1, steps=1, device=device)  # first-call costs go here
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ends: list[float] = []  # when each step ended: the per-step figure leaves out the checks and the scoring

    def step_ended(_step) -> None:
        _sync(device)
        ends.append(time.perf_counter())

    _sync(device)
    start = time.perf_counter()
    dream(loaded, photo, "inception4c", octaves=1, steps=steps, device=device, on_step=step_ended)
    _sync(device)
    seconds = time.perf_counter() - start
    per_step = (ends[-1] - ends[0]) / (steps - 1) if steps > 1 else seconds
    figures = {"what": "dreamlab_dream", "device": torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
               "size": f"{size[1]}x{size[0]}", "layer": "inception4c", "steps": steps,
               "seconds": round(seconds, 3), "ms_per_step": round(1000 * per_step, 1)}
    if device.type == "cuda":
        figures["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    else:
        figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return figures


def _loop_objective(layer: str, units: list[int]):
    """The same scores as `channel(layer, units)`, computed the naive way: one Python step per unit."""
    from dreamlab.optvis.objectives import Objective

    def scorer(acts: dict, index: torch.Tensor) -> torch.Tensor:
        return torch.stack([acts[layer][k, units[u]].mean() for k, u in enumerate(index.tolist())])

    return Objective(scorer, frozenset({layer}), f"loop over {layer} units", tuple(f"{layer}:{u}" for u in units))


def run_ablation(*, steps: int, size: int, units: int, device: torch.device, compile: str | None = None,
                 repeats: int = 3):
    """Time `inception4c:0-<units-1>` with one speed-up at a time switched (yield one dict per variant).

    Each variant changes one thing against the default render of this device: the forward runs to the end
    (no early stop), the objective loops over units in Python instead of one gather, the other precision, the
    other memory layout, per-coordinate Adam, and (with `compile`) torch.compile, timed after its warm-up.
    Each variant's figure is the best of `repeats` rounds. All variants share one loaded model, which is
    dreamlab's: the first render moves it to `device` for good, and each render gets the memory layout it asks
    for and leaves it contiguous again (models/prepare.py), so no variant inherits another's layout.
    """
    from functools import partial
    from unittest import mock

    from dreamlab.optvis.capture import Capture
    from dreamlab.optvis.engine import render
    from dreamlab.models.loading import load_model
    from dreamlab.optvis.objectives import channel

    check_bench_size(size)
    loaded = load_model("googlenet", weights="none")
    cuda = device.type == "cuda"
    gather = channel("inception4c", range(units))
    variants = [
        ("default", gather, {}, None),
        ("no_early_stop", gather, {}, mock.patch("dreamlab.optvis.engine.Capture", partial(Capture, stop_early=False))),
        ("per_unit_loop", _loop_objective("inception4c", list(range(units))), {}, None),
        ("fp32" if cuda else "bf16", gather, {"precision": "fp32" if cuda else "bf16"}, None),
        ("no_channels_last" if cuda else "channels_last", gather, {"channels_last": not cuda}, None),
        ("adam", gather, {"optimizer": "adam"}, None),
    ]
    render(loaded, gather, steps=2, size=size, device=device)  # first-call costs (allocator, kernels) go here
    if compile:
        render(loaded, gather, steps=steps, size=size, device=device, compile=compile)  # the warm-up
        variants.append((f"compile_{compile}", gather, {"compile": compile}, None))
    best: dict[str, float] = {}
    for _ in range(repeats):  # rounds over all variants, best of each: drifts in machine speed hit them all
        for name, objective, options, patch in variants:
            with patch or contextlib.nullcontext():
                seconds = _timed_render(device, loaded, objective, steps=steps, size=size, **options)[1]
            ms = 1000 * seconds / steps
            best[name] = min(ms, best.get(name, ms))
    for name, ms in best.items():
        yield {"what": "ablation", "variant": name, "units": units, "steps": steps, "size": size,
               "repeats": repeats, "ms_per_step": round(ms, 3), "vs_default": round(ms / best["default"], 3)}


PEER_PARTS = ("ceiling", "lucent", "dreams")  # what ../shared/bench/peer_bench.py --only knows
PEER_PACKAGES = {"lucent": "lucent", "dreams": "torch_dreams"}  # the parts that import from --peer-site
# the dreamlab workload each part's ratio is taken against (ratios() below): without it the part gives no ratio
PEER_WORKLOADS = {"ceiling": ("layer",), "lucent": ("unit", "layer"), "dreams": ("unit",)}


# the JSON line ("what") that carries each part's figure in peer_bench.py's output
PEER_FIGURES = {"ceiling": "ceiling_googlenet_fwd_bwd", "lucent": "lucent_render_vis", "dreams": "torch_dreams_render"}


def _positive(value: object, whole: bool = False) -> bool:
    """A finite number > 0 (a whole one with `whole`), not a bool."""
    kinds = int if whole else (int, float)
    return not isinstance(value, bool) and isinstance(value, kinds) and math.isfinite(value) and value > 0


def peer_figure(line: object) -> float | None:
    """A peer line's images_per_s when it is a usable figure (a number > 0, finite; lucent's with its whole batch
    size), else None: a malformed line gives no ratio rather than a division by zero or a KeyError.

    peer_bench.py rounds images_per_s to one decimal, which on a slow CPU is a tenth of the figure or more (32
    steps in 70.04 s print as 0.5, not 0.457): where the line also has its seconds (two decimals) with steps and
    batch, or its ms_per_step (three decimals), the figure is computed from those, as long as it rounds to the
    printed one (else the printed one is kept)."""
    if not isinstance(line, dict):
        return None
    value = line.get("images_per_s")
    if not _positive(value):
        return None
    batch = line.get("batch")
    if line.get("what") == PEER_FIGURES["lucent"] and not _positive(batch, whole=True):
        return None
    batch = batch if _positive(batch, whole=True) else 1
    exact = None
    if _positive(line.get("steps"), whole=True) and _positive(line.get("seconds")):
        exact = batch * line["steps"] / line["seconds"]
    elif _positive(line.get("ms_per_step")):
        exact = batch * 1000 / line["ms_per_step"]
    if exact is not None and math.isclose(exact, value, rel_tol=0.01, abs_tol=0.05):
        return exact
    return float(value)


def _figures(peers: Sequence[object], part: str) -> list[dict]:
    """The lines of `peers` that carry a usable figure of `part`."""
    return [line for line in peers if isinstance(line, dict) and line.get("what") == PEER_FIGURES[part]
            and peer_figure(line) is not None]


class PeerBenchFailed(DreamlabError):
    """The peer benchmark exited with an error, or reported that a part it was asked for failed; `lines` are the
    JSON lines it printed before (already echoed). A failure at run time, not of the command line: exit 1."""

    exit_code = 1

    def __init__(self, message: str, lines: list[dict]):
        super().__init__(message)
        self.lines = lines


@dataclass(frozen=True)
class PeerPlan:
    """The peer benchmark's options, checked: the parts to run and lucent's batch sizes."""

    parts: tuple[str, ...]
    batches: tuple[int, ...]


def parse_peer_parts(parts: str) -> tuple[str, ...]:
    """--peer-parts as a tuple of known part names (empty entries dropped, order and duplicates kept out)."""
    asked = tuple(dict.fromkeys(part.strip() for part in parts.split(",") if part.strip()))
    if not asked:
        raise DreamlabError(f"--peer-parts {parts!r} names no part; valid: {', '.join(PEER_PARTS)} (comma-separated)")
    unknown_parts = [part for part in asked if part not in PEER_PARTS]
    if unknown_parts:
        raise DreamlabError(f"--peer-parts {parts!r}: unknown part {', '.join(map(repr, unknown_parts))}; valid: "
                            f"{', '.join(PEER_PARTS)} (comma-separated)")
    return asked


def parse_peer_batches(batches: str) -> tuple[int, ...]:
    """--peer-batches as positive batch sizes; the peer benchmark would only fail on a bad one after dreamlab's
    renders."""
    sizes = []
    for text in batches.split(","):
        try:
            size = int(text.strip())
        except ValueError:
            size = 0
        if size < 1:
            raise DreamlabError(f"--peer-batches {batches!r}: {text.strip()!r} is not a positive whole number; give "
                                f"lucent's batch sizes separated by commas, e.g. 1,8,32")
        sizes.append(size)
    return tuple(dict.fromkeys(sizes))


def check_peer_options(script: Path, site: Path, parts: str, batches: str = "1",
                       workloads: Sequence[str] = ("unit", "layer")) -> PeerPlan:
    """Refuse, before any work, a peer benchmark that is not a Python script, parts it does not know or that give
    no ratio against `workloads` (dreamlab's), batch sizes that are not positive integers, and a --peer-site
    folder that is missing where the parts asked for import from it."""
    if script.suffix != ".py":
        raise DreamlabError(f"--peer-bench {str(script)!r} is not a Python script; give the peer benchmark, "
                            f"../shared/bench/peer_bench.py")
    asked = parse_peer_parts(parts)
    sizes = parse_peer_batches(batches)
    for part in asked:
        if not set(PEER_WORKLOADS[part]) & set(workloads):
            raise DreamlabError(f"--peer-parts {part} is compared with dreamlab's {PEER_WORKLOADS[part][0]} "
                                f"workload, which this run does not time; use --workload both (the default) or leave "
                                f"{part} out")
    if "lucent" in asked and list(workloads) == ["unit"] and 1 not in sizes:
        raise DreamlabError(f"--peer-batches {batches!r}: the unit workload is compared with lucent at batch 1; add "
                            f"1 to --peer-batches")
    needs_site = [part for part in asked if part in PEER_PACKAGES]
    if needs_site and not site.is_dir():
        packages = " and ".join(PEER_PACKAGES[part] for part in needs_site)
        one = len(needs_site) == 1
        raise DreamlabError(f"--peer-site {str(site)!r} is not a folder, and the peer benchmark imports {packages} "
                            f"from it; give --peer-site DIR where {packages} {'is' if one else 'are'} installed, or "
                            f"install {'it' if one else 'them'} there with ../shared/bench/setup_peers.sh")
    return PeerPlan(asked, sizes)


def peer_device_env(device: torch.device, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment that makes the peer benchmark run on `device`: it has no device option and takes cuda
    whenever torch sees one, so the GPUs it may see are set (none for the CPU, where its threads are set to
    dreamlab's too). Refuses a device it cannot run on."""
    if device.type == "cpu":
        return {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    if device.type == "cuda":
        visible = [d.strip() for d in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        index = device.index or 0
        if "CUDA_VISIBLE_DEVICES" in environ and index < len(visible):
            return {"CUDA_VISIBLE_DEVICES": visible[index]}  # cuda:N counts among the GPUs already visible
        return {"CUDA_VISIBLE_DEVICES": str(index)}
    raise DreamlabError(f"--peer-bench runs the peers on cpu or cuda only, not on {device.type}: give --device cpu "
                        f"or cuda, or leave --peer-bench out")


def device_name(device: torch.device) -> str:
    """The name peer_bench.py's env line gives the device: the GPU's name, or 'cpu'."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def run_peer_bench(script: Path, site: Path, *, steps: int, size: int, batches: str, parts: str = "lucent",
                   device: torch.device = torch.device("cpu")) -> list[dict]:
    """Run the shared peer benchmark in a subprocess on `device` with dreamlab's steps and size, and echo its JSON
    lines.

    Raises PeerBenchFailed, after echoing the lines, when it exits with an error (the message ends with the last
    line of its stderr), reports a part it was asked for as failed (a `{"what": part, "error": ...}` line),
    says that it ran on another device than `device`, or prints no usable figure (`peer_figure`) for a part it
    was asked for."""
    env = {**os.environ, **peer_device_env(device),
           "PYTHONPATH": os.pathsep.join([str(site), str(script.parent / "stubs")])}
    cmd = [sys.executable, str(script), "--steps", str(steps), "--size", str(size), "--batches", batches,
           "--only", parts]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines: list[dict] = []
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                lines.append(json.loads(line))
    for line in lines:
        print(json.dumps(line), flush=True)
    if done.returncode != 0:
        said = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        how = f"killed by signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        last = f": {said[-1][:300]}" if said else " with nothing on stderr"
        raise PeerBenchFailed(f"peer benchmark {script} failed ({how}){last}", lines)
    ran_on = [line["device"] for line in lines if isinstance(line, dict) and line.get("what") == "env"
              and "device" in line]
    if ran_on and ran_on[0] != device_name(device):
        raise PeerBenchFailed(f"peer benchmark ran on {ran_on[0]!r}, dreamlab on {device_name(device)!r}: no ratio "
                              f"is given across devices", lines)
    failed = [_part_failure(line, site) for line in lines
              if isinstance(line, dict) and line.get("what") in PEER_PARTS and "error" in line]
    if failed:
        raise PeerBenchFailed("; ".join(failed), lines)
    missing = [part for part in parse_peer_parts(parts) if not _figures(lines, part)]
    if missing:
        raise PeerBenchFailed(_no_figure(script, missing, lines), lines)
    return lines


def _no_figure(script: Path, missing: Sequence[str], lines: Sequence[dict]) -> str:
    """Why parts that were asked for give no ratio: their figure lines are missing or malformed."""
    malformed = sum(1 for line in lines for part in missing if line.get("what") == PEER_FIGURES[part])
    what = " or ".join(repr(PEER_FIGURES[part]) for part in missing)
    batch = ", its batch" if "lucent" in missing else ""
    found = f"{malformed} malformed one{'s' if malformed > 1 else ''}" if malformed else "none"
    return (f"peer benchmark {script} gave no usable figure for {', '.join(missing)} (expected a JSON line with "
            f"what {what}{batch} and images_per_s > 0; it printed {found}); run it alone to see its output")


def _part_failure(line: dict, site: Path) -> str:
    """What a peer part's error line means, in words."""
    part, error = line["what"], str(line["error"])
    package = PEER_PACKAGES.get(part)
    if package and error.startswith("ModuleNotFoundError"):
        return (f"peer benchmark could not import {package}: give --peer-site DIR where {package} is installed "
                f"(now {str(site)!r}; ../shared/bench/setup_peers.sh installs it)")
    return f"peer benchmark part {part} failed: {error}"


def ratios(ours: dict[str, dict], peers: list[dict]) -> dict[str, float]:
    """dreamlab's image-steps/s over the peers', per workload, from figures of the same run: the unit workload
    against lucent at batch 1 and torch-dreams (both one unit), the layer workload against lucent's best batch
    and the best bare fwd+bwd of the ceiling. Malformed peer lines (see `peer_figure`) are left out."""
    lucent = {line["batch"]: peer_figure(line) for line in _figures(peers, "lucent")}
    found = {}
    if "unit" in ours and 1 in lucent:
        found["unit_vs_lucent_1"] = round(ours["unit"]["images_per_s"] / lucent[1], 2)
    if "layer" in ours and lucent:
        best = max(lucent.values())
        found["layer_vs_lucent_best_batched"] = round(ours["layer"]["images_per_s"] / best, 2)
    dreams = [peer_figure(line) for line in _figures(peers, "dreams")]
    if "unit" in ours and dreams:
        found["unit_vs_torch_dreams"] = round(ours["unit"]["images_per_s"] / dreams[0], 2)
    ceiling = [peer_figure(line) for line in _figures(peers, "ceiling")]
    if "layer" in ours and ceiling:
        found["layer_vs_best_fwd_bwd_ceiling"] = round(ours["layer"]["images_per_s"] / max(ceiling), 2)
    return found
