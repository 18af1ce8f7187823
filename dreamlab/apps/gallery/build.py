"""`dreamlab gallery`: render every channel of some layers into a folder you can browse, resume and shard.

    dreamlab gallery googlenet --layers inception3a,inception4c --out gallery/googlenet
    torchrun --nproc-per-node 4 -m dreamlab gallery googlenet --layers inception4c --out /shared/googlenet

What OUT holds:

    index.html, manifest.json     the page (opens from disk) and its data, rewritten after every batch
    <layer>/<layer>_0007.png      one image per unit, its provenance in PNG text chunks
                                  (with diversity N: <layer>_0007_1.png to _N.png)
    <layer>/contact_sheet.png     the layer's finished units in one grid
    .units/<layer>/0007.json      the unit's record, written after its PNG: it is what marks the unit done
    <layer>/<layer>_0007_examples.png, .examples/<layer>.json
                                  with --examples DIR: the unit's best crops of those photos

Resume: a rerun skips every unit whose record and PNG exist and renders the rest. Every file is written
under a temporary name and renamed into place, so a stop at any moment (Ctrl-C, kill -9, power loss) leaves
whole files or none; temporary files a killed run left behind are removed at the next start. Records made
with other settings (recipe, weights and random init's weights_seed, steps, size, seed, diversity, precision,
render's options resume.OPTION_KEYS, and the render scheme, resume.RENDER_SCHEME) stop the run with an error
rather than mixing two galleries in one folder; `--overwrite` replaces them, and refuses while the folder holds
units of layers the run does not render (it would delete them for good). Another batch size, device or
--compile choice is recorded and noted, not refused (see Determinism). `.units/lock` exists while a run holds
the folder and is removed at its end.

Determinism: every unit is unit `channel` of the one objective `layer:0-(n-1)` with the gallery's seed,
rendered in batches of up to `batch_size` consecutive channels through `render(..., units=...)`, which gives
each unit its own starting noise and transform draws. So a unit's pixels depend on the settings alone, never
on interruptions, resumes, which rank rendered it or how many ranks there were: on CPU a resumed or sharded
run writes byte-identical PNGs to one uninterrupted run with the same batch size (on CUDA, up to cuDNN's own
nondeterminism). The batch size changes floating-point rounding wherever a kernel's result depends on it, on
CPUs too, and a long optimization amplifies that (gallery/README.md, Determinism: lenet-digits conv2:0-49 at
256 steps, batches of 3 change 8 of the 50 units), so records keep it and a resume with another one says so.
`render(model, channel(layer, range(n)), units=[ch], seed=seed, steps=..., size=...)` renders one unit again.

Distributed: under torchrun (WORLD_SIZE > 1) rank 0 plans (loads the model, checks the folder, lists the
batches still to do) and broadcasts the plan; ranks take every world-th batch and write their own units;
after a barrier rank 0 writes the contact sheets, manifest and page. OUT must be one folder all ranks see.

The parts: naming.py (file names), folder.py (the folder's files, lock and clean-up), ranks.py
(torch.distributed), plan.py (checks and batches), page.py and static/ (index.html); this module runs them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dreamlab.apps.gallery.examples import examples_record, unit_examples, write_examples
from dreamlab.apps.gallery.folder import GalleryFolder
from dreamlab.apps.gallery.naming import MANIFEST_NAME, UNITS_DIR, sheet_file, unit_files
from dreamlab.apps.gallery.page import INDEX_NAME
from dreamlab.apps.gallery.plan import Batch, Log, Plan, compile_label, make_plan
from dreamlab.apps.gallery.resume import OPTION_KEYS, RENDER_SCHEME
from dreamlab.apps.gallery.ranks import RankGroup
from dreamlab.errors import DreamlabError, check_whole
from dreamlab.inspect.examples import checked_images
from dreamlab.inspect.tensorboard import TensorBoardLog, with_snapshots
from dreamlab.io import check_writable
from dreamlab.models.loading import LoadedModel, load_model
from dreamlab.models.summary import MAX_INPUT_SIZE
from dreamlab.optvis.alpha import ALPHA_WEIGHT
from dreamlab.optvis.engine import render
from dreamlab.optvis.result import RenderResult
from dreamlab.optvis.objectives import channel
from dreamlab.optvis.settings import MIN_SIZE, RenderSettings, check_diversity, check_precision
from dreamlab.optvis.units import format_units


@dataclass
class GalleryResult:
    """What a run did. `manifest` is None on ranks other than 0 (they do not write it)."""

    out: Path
    manifest: dict[str, Any] | None
    rendered: int  # units rendered by this process
    skipped: int  # units that were already done when the run started
    total: int  # units this run asked for
    new_units: list[str] = dataclasses.field(default_factory=list)  # units rendered now, by every rank (rank 0)


def build_gallery(model: str | Path | LoadedModel, out: str | Path, layers: Sequence[str] | None = None, *,
                  weights: str | Path | None = "default", steps: int | None = None, size: int | None = None,
                  seed: int = 0, device: str | torch.device | None = None, batch_size: int | None = None,
                  channels: Sequence[int] | None = None, overwrite: bool = False, compile: bool | str = False,
                  log: Log | None = None, tensorboard: TensorBoardLog | None = None, diversity: int = 1,
                  diversity_weight: float | None = None, examples: str | Path | None = None,
                  examples_top: int = 8, precision: str = "auto", param: str | None = None,
                  optimizer: str | None = None, lr: float | None = None, fourier_decay: float | None = None,
                  transforms: str | None = None, alpha: bool = False,
                  alpha_weight: float | None = None) -> GalleryResult:
    """Render one image per channel of `layers` (default: the recipe's default layer) into the folder `out`.

    Units already in `out` are skipped (see the module docstring for resume, determinism and torchrun).
    `batch_size` is the number of units per engine call (default: 64 on CUDA, 16 on CPU; see Determinism);
    `channels` limits every layer to those channel numbers. Ctrl-C raises KeyboardInterrupt once every
    finished unit is on disk (the batch in progress is dropped). `compile` is render's: the warm-up is paid
    by the first batch (and once more by a smaller last one), every other batch reuses it. `tensorboard` logs
    each rendered batch's objective and gradient norm per unit per step, and its images. `diversity` N renders
    N images per unit, pushed apart at the unit's layer (`render`'s diversity; `diversity_weight` default 1):
    the record lists them as `files`, `file` is the first, and the default `batch_size` is divided by N.
    `examples`: a folder of photos (or image paths) whose `examples_top` best crops per unit the page shows
    under its render (apps/gallery/examples.py), found once every unit is rendered. `precision` is render's
    (auto: bf16 on cuda, fp32 elsewhere); a folder holds one precision. `param`, `optimizer`, `lr`,
    `fourier_decay` and `transforms` are render's, by name (None: each layer's recipe's); a folder holds one of
    each. `alpha` (with `alpha_weight`) renders transparent RGBA units, as render's; the contact sheets show them
    over grey, the page over a checkerboard.
    """
    out = Path(out)
    # render's checks and texts, before the model loads and the folder is made
    RenderSettings(steps=steps, seed=seed, compile=compile)
    if batch_size is not None:
        check_whole("batch_size", batch_size, 1, flag="--batch-size",
                    hint=" (units per render call; None: 64 on cuda, 16 on cpu)")
    options = _checked_options(param=param, optimizer=optimizer, lr=lr, fourier_decay=fourier_decay,
                               transforms=transforms, alpha=alpha or None, alpha_weight=alpha_weight)
    diversity_weight, size, examples_top = _checked_arguments(out, diversity, diversity_weight, precision, size,
                                                              examples, examples_top)
    log = log or _stderr
    group, dev = RankGroup.start(device)
    folder = GalleryFolder(out)
    with contextlib.ExitStack() as stack:
        stack.callback(group.close)
        loaded, plan = _shared_plan(group, model, weights, lambda loaded: make_plan(
            loaded, folder, stack, layers, steps=steps, size=size, seed=seed, device=dev, batch_size=batch_size,
            channels=channels, overwrite=overwrite, log=log, diversity=diversity, diversity_weight=diversity_weight,
            precision=precision, compile=compile, options=options))
        total = sum(len(b.channels) for b in plan.batches)
        done_before = sum(1 for b in plan.batches for c in b.channels if (b.layer, c) in plan.done)
        if group.rank == 0:
            shared = f"; {len(plan.todo)} batches to do, shared by {group.world} ranks" if group.distributed else ""
            n = len(plan.batches)
            log(f"{out}: {total} unit{'s' if total != 1 else ''} asked for, in {n} batch{'es' if n != 1 else ''}, "
                f"{done_before} already done{shared}")
        rendered = _render_my_batches(loaded, folder, plan, group, dev, log, compile, tensorboard)
        group.barrier()
        manifest = None
        if group.rank == 0:
            manifest = _finish_gallery(loaded, folder, plan, group, examples, examples_top, log)
        return GalleryResult(out, manifest, rendered, done_before, total,
                             plan.new_units() if group.rank == 0 else [])


def _checked_arguments(out: Path, diversity: int, diversity_weight: float | None, precision: str, size: int | None,
                       examples: str | Path | None, examples_top: int) -> tuple[float | None, int | None, int]:
    """build_gallery's arguments checked before the model loads: (diversity_weight, size, examples_top) as the
    run uses them (diversity_weight defaults to 1 with diversity N >= 2)."""
    if diversity == 1 and diversity_weight is not None:
        raise DreamlabError("diversity_weight (--diversity-weight) applies to several images per unit: add "
                            "diversity N (--diversity N, N >= 2), or leave it out")
    if diversity != 1 and diversity_weight is None:
        diversity_weight = 1.0
    check_diversity(diversity, 1.0 if diversity_weight is None else diversity_weight)
    if diversity_weight is not None:
        diversity_weight = float(diversity_weight)
    check_precision(precision)
    if size is not None:  # render's bounds, before the model loads (the model's own limits are the plan's)
        size = check_whole("size", size, MIN_SIZE, MAX_INPUT_SIZE, flag="--size", hint=" pixels")
    check_out_folder(out)  # before the model is loaded
    if examples is not None:
        examples_top = check_whole("examples_top", examples_top, 1, flag="--examples-top")
        checked_images(examples)  # before hours of rendering
    return diversity_weight, size, examples_top


def _checked_options(**given: Any) -> dict[str, Any]:
    """The render options given (not None), checked as render checks them, before the model loads."""
    options = {key: value for key, value in given.items() if value is not None}
    RenderSettings(**options)  # render's own checks and texts: lr and fourier_decay ranges, unknown names
    for key, value in options.items():
        if key not in ("lr", "fourier_decay", "alpha", "alpha_weight") and not isinstance(value, str):  # names
            raise DreamlabError(f"a gallery takes {key} by name (see `dreamlab render --help`), got "
                                f"{type(value).__name__}; render custom code with `dreamlab.render`")
    if options.get("alpha"):  # recorded as rendered, so that a resume naming the default matches it
        options["alpha_weight"] = options.get("alpha_weight", ALPHA_WEIGHT)
    return {key: float(value) if key in ("lr", "fourier_decay", "alpha_weight") else value
            for key, value in options.items()}


def _shared_plan(group: RankGroup, model: str | Path | LoadedModel, weights: str | Path | None,
                 make: Callable[[LoadedModel], Plan]) -> tuple[LoadedModel, Plan]:
    """The loaded model and the plan on every rank: rank 0 loads the model and makes the plan (`make`), then
    broadcasts it, or its failure, to the other ranks, which load the model after it."""
    loaded: LoadedModel | None = None
    plan: Plan | None = None
    if group.rank == 0:
        try:
            loaded = model if isinstance(model, LoadedModel) else load_model(model, weights)
            plan = make(loaded)
        except Exception as exc:
            if group.distributed:  # tell the other ranks, or they wait for the plan until the timeout
                group.broadcast((None, _failure(exc)))
            raise
    plan, failure = group.broadcast((plan, None))
    if plan is None:
        message, code = failure or _failure(None)
        error = DreamlabError(message)
        error.exit_code = code  # every rank exits as rank 0 does (1 for a failed download, not 2)
        raise error
    if loaded is None:  # after rank 0 has loaded it, so that a download happens once
        loaded = model if isinstance(model, LoadedModel) else load_model(model, weights)
    return loaded, plan


def _failure(exc: BaseException | None) -> tuple[str, int]:
    """What the other ranks say and exit with for rank 0's failure `exc`: its message and exit status where it
    is a DreamlabError; else 1 (a crash, not the command line's fault), pointing at rank 0's own report."""
    if isinstance(exc, DreamlabError):
        return str(exc), exc.exit_code
    return "rank 0 failed; its output says why", 1


def _render_my_batches(loaded: LoadedModel, folder: GalleryFolder, plan: Plan, group: RankGroup,
                       device: torch.device, log: Log, compile: bool | str,
                       tensorboard: TensorBoardLog | None) -> int:
    """Render this rank's share of the batches to do (every world-th one), logging each; return the units
    written. Rank 0 rewrites the page after each batch."""
    prefix = f"[rank {group.rank}/{group.world}] " if group.distributed else ""
    mine = plan.todo[group.rank::group.world]
    rendered = 0
    for i, batch in enumerate(mine):
        start = time.monotonic()
        bar = not group.distributed and sys.stderr.isatty()  # off a terminal, the batch lines below say it
        new = _render_batch(loaded, folder, plan, batch, device, progress=bar, compile=compile,
                            tensorboard=tensorboard)
        rendered += new
        if group.rank == 0:
            _write_pages(folder, plan, [batch.layer])
        log(f"{prefix}{_progress(batch, plan.done, new)} in {time.monotonic() - start:.1f} s "
            f"(batch {i + 1}/{len(mine)})")
    return rendered


def _finish_gallery(loaded: LoadedModel, folder: GalleryFolder, plan: Plan, group: RankGroup,
            examples: str | Path | None, examples_top: int, log: Log) -> dict[str, Any]:
    """On rank 0, once every rank is done: the examples (with `examples`), the contact sheets not yet up to
    date, the manifest and the page; returns the manifest."""
    out = folder.out
    # sheets with other ranks' units, and any that a stopped run did not get to write
    stale = {b.layer for b in plan.todo} if group.distributed else set()
    stale |= {layer for layer, _ in plan.layers if not (out / sheet_file(layer)).is_file()}
    if examples is not None:
        for layer, _ in plan.layers:
            chosen = [c for b in plan.batches if b.layer == layer for c in b.channels]
            write_examples(out, loaded, layer, chosen, examples, examples_top, plan.settings.size, log,
                           weights_seed=plan.settings.weights_seed)
    return _write_pages(folder, plan, stale)


FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".html", ".htm", ".json")


def check_out_folder(out: Path) -> None:
    """Refuse an output folder that cannot be written, one named like an image or page file (`x.png`): a
    gallery is a folder, or a folder that is no gallery (no .units/) but holds an index.html or manifest.json,
    which the run would replace. A gallery folder that already has such a name is still resumed."""
    check_writable(out, "gallery folder", folder=True)
    suffix = out.suffix.lower()
    is_gallery = (out / UNITS_DIR).is_dir()
    if suffix in FILE_SUFFIXES and not is_gallery:
        folder = str(out.with_suffix(""))
        raise DreamlabError(f"out={str(out)!r} (--out) ends in {suffix} like a file, but a gallery is a folder (one "
                            f"PNG per unit, manifest.json, index.html); give a folder name, e.g. out={folder!r} "
                            f"(--out {shlex.quote(folder)})")
    if not is_gallery and out.is_dir():  # a folder of the user's own: its page and data are not ours to replace
        for name in (INDEX_NAME, MANIFEST_NAME):
            if (out / name).exists():
                inside = str(out / "gallery")
                raise DreamlabError(f"out={str(out)!r} (--out) already holds {name} that no gallery wrote (there is "
                                    f"no {UNITS_DIR}/ folder), which the gallery's own {name} would replace; give an "
                                    f"empty folder or a new name, e.g. out={inside!r} (--out {shlex.quote(inside)})")


def _render_batch(loaded: LoadedModel, folder: GalleryFolder, plan: Plan, batch: Batch, device: torch.device,
                  progress: bool, compile: bool | str = False, tensorboard: TensorBoardLog | None = None) -> int:
    """Render one batch and save its unfinished units; return how many were saved."""
    result = _render_units(loaded, plan, batch, device, progress, compile, tensorboard)
    if tensorboard is not None:
        tensorboard.write_result(result)
    if result.interrupted:  # the images are part-way: keep none of them
        raise KeyboardInterrupt
    copies = plan.settings.diversity
    written = 0
    scores = result.final_scores.tolist()
    off = result.never_on_mask()
    for i, ch in enumerate(batch.channels):
        if (batch.layer, ch) in plan.done:
            continue
        mine = slice(i * copies, (i + 1) * copies)  # a unit's images are consecutive
        record = _unit_record(plan, batch.layer, ch, result, scores[mine], all(off[mine]), device, compile)
        folder.write_unit(record, result.images[mine], _unit_texts(plan, batch.layer, ch, result, scores[mine]))
        written += 1
    return written


def _render_units(loaded: LoadedModel, plan: Plan, batch: Batch, device: torch.device, progress: bool,
                  compile: bool | str, tensorboard: TensorBoardLog | None) -> RenderResult:
    """Render the batch's channels with the plan's settings (and the layer's steps and overrides)."""
    s = plan.settings
    steps = plan.layer_steps[batch.layer]
    count = dict(plan.layers)[batch.layer]
    thresholds, on_snapshot = with_snapshots(tensorboard, steps, (), None)
    extra = {"diversity": s.diversity, "diversity_weight": s.diversity_weight} if s.diversity > 1 else {}
    # the recipe's size is left to render, which then shows a fixed-size model (ViT) its own size (model_size)
    size = None if s.size == loaded.recipe.input_size else s.size
    return render(loaded, channel(batch.layer, range(count)), units=batch.channels, steps=steps, size=size,
                  seed=s.seed, device=device, progress=progress, compile=compile, thresholds=thresholds,
                  precision=s.precision,
                  on_snapshot=on_snapshot, keep_snapshots=False, **plan.layer_overrides.get(batch.layer, {}),
                  **extra)


def _unit_record(plan: Plan, layer: str, ch: int, result: RenderResult, scores: list[float], never_on: bool,
                 device: torch.device, compile: bool | str) -> dict[str, Any]:
    """A unit's manifest record; `scores`: its images' final scores, `never_on`: at 0 for every step in all."""
    s = plan.settings
    copies = s.diversity
    unit = f"{layer}:{ch}"
    files = unit_files(layer, ch, copies)
    record = {
        "unit": unit, "layer": layer, "channel": ch, "objective": unit, **plan.class_of(layer, ch),
        "activation": _finite_or_none(scores[0]),  # the first image's: the one the page and sheet show
        "never_on": never_on,  # at 0 for every step, as render's note says
        "seed": s.seed, "steps": plan.layer_steps[layer], "size": s.size, "recipe": s.recipe,
        "recipe_hash": s.recipe_hash, "weights": s.weights, "weights_seed": s.weights_seed,
        **({"weights_sha256": s.weights_sha256} if s.weights_sha256 else {}), "device": device.type,
        "precision": result.provenance.get("dreamlab:precision", ""),
        "compile": result.provenance.get("dreamlab:compile", compile_label(compile)), "batch_size": s.batch_size,
        "scheme": RENDER_SCHEME, **{key: value for key, value in plan.layer_options[layer].items()
                                    if value is not None and value is not False}, "file": files[0],
    }
    if copies > 1:
        record.update(diversity=copies, diversity_weight=s.diversity_weight, files=files,
                      activations=[_finite_or_none(v) for v in scores])
    return record


def _unit_texts(plan: Plan, layer: str, ch: int, result: RenderResult, scores: list[float]) -> list[dict[str, str]]:
    """The PNG text of each of a unit's images: the render's provenance, the unit, its score and class."""
    # the objective rendered is the whole layer's channel list, in which the channel is the unit's place
    # (its start noise): `render(model, OBJECTIVE, units=[INDEX])` renders the image again
    named = {f"dreamlab:{key}": value for key, value in plan.class_of(layer, ch).items()}
    return [{**result.provenance, "dreamlab:unit": f"{layer}:{ch}", "dreamlab:unit_index": str(ch),
             "dreamlab:score": f"{score:.6g}", **named} for score in scores]


def _progress(batch: Batch, done: set[tuple[str, int]], new: int) -> str:
    """'conv2:0-6: 7 units', or on a resume that renders part of a batch, which units it rendered:
    'conv2:7-13: 1 unit (conv2:9; 6 already done)'."""
    head = f"{batch.label}: {new} unit{'' if new == 1 else 's'}"
    if new == len(batch.channels):
        return head
    rendered = [c for c in batch.channels if (batch.layer, c) not in done]
    return f"{head} ({batch.layer}:{format_units(rendered)}; {len(batch.channels) - new} already done)"


def _finite_or_none(score: float) -> float | None:
    """A score for JSON (which has no NaN)."""
    return score if math.isfinite(score) else None


def _write_pages(folder: GalleryFolder, plan: Plan, sheets_for: Iterable[str]) -> dict[str, Any]:
    """Rebuild the contact sheets of `sheets_for`, then manifest.json and index.html, from the records on disk."""
    records = folder.read_records()
    sheets_for = set(sheets_for)
    s = plan.settings
    layers, units = [], []
    for layer, count in plan.layers:
        chans = sorted(ch for (name, ch) in records if name == layer)
        entry: dict[str, Any] = {"name": layer, "channels": count, "steps": plan.layer_steps[layer]}
        if layer == plan.output_layer:  # the model's output: the page's search box takes `logit:N` for it
            entry["output"] = True
        if chans:
            firsts = [(ch, records[(layer, ch)]["file"]) for ch in chans]
            named = {ch: plan.class_of(layer, ch)["class"] for ch in chans if plan.class_of(layer, ch)}
            entry["sheet"] = folder.write_sheet(layer, firsts, named) if layer in sheets_for else sheet_file(layer)
        layers.append(entry)
        shown = examples_record(folder.out, layer)
        # class names also for units an earlier version recorded without them
        units += [{**records[(layer, ch)], **plan.class_of(layer, ch), **unit_examples(shown, ch)} for ch in chans]
    every_steps = {plan.layer_steps[layer] for layer, _ in plan.layers}
    manifest = {"model": s.model, "recipe": s.recipe, "recipe_hash": s.recipe_hash, "weights": s.weights,
                "steps": every_steps.pop() if len(every_steps) == 1 else None,  # None: they differ (see layers)
                "size": s.size, "seed": s.seed, **_shared_options(plan),
                **({"diversity": s.diversity, "diversity_weight": s.diversity_weight} if s.diversity > 1 else {}),
                "layers": layers, "units": units}
    folder.write_manifest(manifest)
    return manifest


def _shared_options(plan: Plan) -> dict[str, Any]:
    """The render options that every layer of the gallery uses alike, for the manifest (fourier_decay only where
    the layers use the Fourier parameterization, the one it shapes)."""
    shared = {}
    for key in OPTION_KEYS:
        values = {plan.layer_options[layer][key] for layer, _ in plan.layers}
        # alpha only where it is on; `is`: a fourier_decay of 0 equals False
        if len(values) == 1 and not any(value is None or value is False for value in values):
            shared[key] = values.pop()
    return shared


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


