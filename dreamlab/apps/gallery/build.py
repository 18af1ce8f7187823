"""`dreamlab gallery`: render every channel of some layers into a folder you can browse, resume and shard.

    dreamlab gallery googlenet --layers inception3a,inception4c --out gallery/googlenet
    torchrun --nproc-per-node 4 -m dreamlab gallery googlenet --layers inception4c --out /shared/googlenet

What OUT holds:

    index.html, manifest.json     the page (opens from disk) and its data, rewritten after every batch
    <layer>/<layer>_0007.png      one image per unit, its provenance in PNG text chunks
    <layer>/contact_sheet.png     the layer's finished units in one grid
    .units/<layer>/0007.json      the unit's record, written after its PNG: it is what marks the unit done

Resume: a rerun skips every unit whose record and PNG exist and renders the rest. Every file is written
under a temporary name and renamed into place, so a stop at any moment (Ctrl-C, kill -9, power loss) leaves
whole files or none; temporary files a killed run left behind are removed at the next start. Records made
with other settings (recipe, weights, steps, size, seed) stop the run with an error rather than mixing two
galleries in one folder; `--overwrite` replaces them.

Determinism: every unit is unit `channel` of the one objective `layer:0-(n-1)` with the gallery's seed,
rendered in batches of up to `batch_size` consecutive channels through `render(..., units=...)`, which gives
each unit its own starting noise and transform draws. So a unit's pixels depend on the settings alone, never
on the batch size, interruptions, resumes, which rank rendered it or how many ranks there were: on CPU a
resumed or sharded run writes byte-identical PNGs to one uninterrupted run (on CUDA, up to cuDNN's own
nondeterminism). `render(model, channel(layer, range(n)), units=[ch], seed=seed, steps=..., size=...)`
renders one unit again.

Distributed: under torchrun (WORLD_SIZE > 1) rank 0 plans (loads the model, checks the folder, lists the
batches still to do) and broadcasts the plan; ranks take every world-th batch and write their own units;
after a barrier rank 0 writes the contact sheets, manifest and page. OUT must be one folder all ranks see.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dreamlab.devices import resolve_device
from dreamlab.optvis.engine import render
from dreamlab.errors import DreamlabError, unknown
from dreamlab.apps.gallery.page import INDEX_NAME, write_index
from dreamlab.inspect.tensorboard import TensorBoardLog, with_snapshots
from dreamlab.io import atomic_write_bytes, atomic_write_text, grid, load_image, png_bytes, safe_name
from dreamlab.models.loading import LoadedModel, load_model
from dreamlab.optvis.objectives import channel
from dreamlab.models.summary import layer_table

UNITS_DIR = ".units"
LOCK_NAME = "lock"
MANIFEST_NAME = "manifest.json"
SHEET_NAME = "contact_sheet.png"
SHEET_TILE = 128  # largest tile side in contact sheets (bigger renders are scaled down)
RESERVED_FOLDERS = {INDEX_NAME, MANIFEST_NAME, UNITS_DIR}
SETTING_KEYS = ("recipe", "recipe_hash", "weights", "steps", "size", "seed")  # must match to resume
_TEMP_FILE = re.compile(r"^\..*\.[0-9a-f]{12}\.tmp$")  # what io.atomic_write_bytes writes before its rename

Log = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    """What decides a unit's pixels, shared by every unit of a gallery."""

    model: str
    recipe: str
    recipe_hash: str
    weights: str
    steps: int
    size: int
    seed: int


@dataclass(frozen=True)
class Batch:
    """Consecutive channels of one layer, rendered together by one engine call."""

    layer: str
    channels: tuple[int, ...]

    @property
    def label(self) -> str:
        first, last = self.channels[0], self.channels[-1]
        return f"{self.layer}:{first}" if first == last else f"{self.layer}:{first}-{last}"


@dataclass
class GalleryResult:
    """What a run did. `manifest` is None on ranks other than 0 (they do not write it)."""

    out: Path
    manifest: dict[str, Any] | None
    rendered: int  # units rendered by this process
    skipped: int  # units that were already done when the run started
    total: int  # units this run asked for


# --------------------------------------------------------------------------------------------- naming


def parse_channels(text: str) -> list[int]:
    """'0-15' or '0-3,8,10-12' -> sorted channel numbers."""
    found: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise DreamlabError(f"--channels: cannot read {part!r} in {text!r}; give ranges and numbers like "
                                f"0-15 or 0-3,8,10-12")
        first, last = int(m[1]), int(m[2] if m[2] is not None else m[1])
        if last < first:
            raise DreamlabError(f"--channels: range {part} ends before it starts; write it as {last}-{first}")
        found.update(range(first, last + 1))
    return sorted(found)


def layer_folder(layer: str) -> str:
    """The folder name of a layer's images: the name itself when it is file-safe, else a safe form plus a hash
    (so that 'a b' and 'a_b' cannot share a folder)."""
    name = safe_name(layer, limit=64)
    if name != layer or name.lower() in RESERVED_FOLDERS:
        digest = hashlib.sha1(layer.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        name = f"{name}-{digest}"
    return name


def unit_file(layer: str, ch: int) -> str:
    """A unit's PNG, relative to the gallery folder, with '/' separators (as the manifest stores it)."""
    folder = layer_folder(layer)
    return f"{folder}/{folder}_{ch:04d}.png"


def sheet_file(layer: str) -> str:
    return f"{layer_folder(layer)}/{SHEET_NAME}"


def plan_batches(layers: Sequence[tuple[str, int]], channels: Sequence[int] | None, batch_size: int) -> list[Batch]:
    """Split each layer's (chosen) channels into runs of consecutive channels within aligned windows of
    `batch_size`: the same channels always form the same batches."""
    batches = []
    for layer, count in layers:
        chosen = sorted({c for c in channels if 0 <= c < count}) if channels is not None else list(range(count))
        if not chosen:
            raise DreamlabError(f"--channels selects no channel of layer {layer!r} ({count} channels: 0-{count - 1})")
        run: list[int] = []
        for c in chosen:
            if run and (c != run[-1] + 1 or c // batch_size != run[0] // batch_size):
                batches.append(Batch(layer, tuple(run)))
                run = []
            run.append(c)
        batches.append(Batch(layer, tuple(run)))
    return batches


# --------------------------------------------------------------------------------------------- folder


class GalleryFolder:
    """The files of one gallery: unit PNGs and records, contact sheets, manifest and page."""

    def __init__(self, out: Path):
        self.out = out
        self.units = out / UNITS_DIR
        self._thumbs: dict[tuple[str, int], Tensor] = {}  # contact-sheet tiles, uint8

    def record_path(self, layer: str, ch: int) -> Path:
        return self.units / layer_folder(layer) / f"{ch:04d}.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the folder for the run: two runs writing one gallery would clash."""
        self.units.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # no flock (Windows): go without
            yield
            return
        with open(self.units / LOCK_NAME, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DreamlabError(f"another dreamlab gallery run is writing {str(self.out)!r}; wait for it to "
                                    f"finish or use another --out") from None
            except OSError:  # a file system without locks (some network mounts): go without
                pass
            yield  # the kernel drops the lock when the process ends, however it ends

    def remove_temp_files(self) -> int:
        """Delete temporary files that a killed run left (only ones named like atomic_write's)."""
        removed = 0
        folders = [self.out, *(p for p in self.out.iterdir() if p.is_dir())] if self.out.is_dir() else []
        if self.units.is_dir():
            folders += [p for p in self.units.iterdir() if p.is_dir()]
        for folder in folders:
            for path in folder.iterdir():
                if _TEMP_FILE.match(path.name) and path.is_file():
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def read_records(self) -> dict[tuple[str, int], dict[str, Any]]:
        """The finished units: records that parse, sit where their unit's record belongs, and have their PNG."""
        found: dict[tuple[str, int], dict[str, Any]] = {}
        if not self.units.is_dir():
            return found
        for path in sorted(self.units.glob("*/*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                layer, ch = record["layer"], record["channel"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # unreadable: the unit is rendered again
            if not isinstance(layer, str) or not isinstance(ch, int) or self.record_path(layer, ch) != path:
                continue
            if record.get("file") == unit_file(layer, ch) and (self.out / unit_file(layer, ch)).is_file():
                found[(layer, ch)] = record
        return found

    def remove_units(self) -> int:
        """--overwrite: delete every record with its PNG and contact sheet (only files this module names)."""
        count = 0
        for path in list(self.units.glob("*/*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                layer, ch = str(record["layer"]), int(record["channel"])
            except (OSError, ValueError, KeyError, TypeError):
                path.unlink(missing_ok=True)
                continue
            (self.out / unit_file(layer, ch)).unlink(missing_ok=True)
            (self.out / sheet_file(layer)).unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            count += 1
        return count

    def write_unit(self, record: dict[str, Any], image: Tensor, text: dict[str, str]) -> None:
        """The PNG first, then the record: a record always means a whole PNG is there."""
        layer, ch = record["layer"], record["channel"]
        atomic_write_bytes(self.out / record["file"], png_bytes(image, text))
        atomic_write_text(self.record_path(layer, ch), json.dumps(record, indent=1, allow_nan=False) + "\n")
        self._thumbs[(layer, ch)] = _thumbnail(image)

    def write_sheet(self, layer: str, channels: Sequence[int]) -> str:
        """Tile the layer's finished units (in channel order) into its contact sheet; return its path."""
        tiles = []
        for ch in channels:
            if (layer, ch) not in self._thumbs:
                self._thumbs[(layer, ch)] = _thumbnail(load_image(self.out / unit_file(layer, ch)))
            tiles.append(self._thumbs[(layer, ch)])
        sheet = grid(torch.stack(tiles).float() / 255, columns=math.ceil(math.sqrt(len(tiles))))
        text = {"dreamlab:layer": layer, "dreamlab:channels": _ranges(channels)}
        atomic_write_bytes(self.out / sheet_file(layer), png_bytes(sheet, text))
        return sheet_file(layer)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """manifest.json, then index.html (each replaced atomically)."""
        atomic_write_text(self.out / MANIFEST_NAME, json.dumps(manifest, indent=1, allow_nan=False) + "\n")
        write_index(self.out, manifest)


def _thumbnail(image: Tensor) -> Tensor:
    """A contact-sheet tile: the image scaled down to SHEET_TILE pixels at most, as uint8."""
    if max(image.shape[-2:]) > SHEET_TILE:
        image = F.interpolate(image[None].float(), size=(SHEET_TILE, SHEET_TILE), mode="bilinear",
                              antialias=True, align_corners=False)[0]
    return (image.float().clamp(0, 1) * 255).round().to(torch.uint8)


def _ranges(channels: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    parts: list[list[int]] = []
    for c in channels:
        if parts and c == parts[-1][1] + 1:
            parts[-1][1] = c
        else:
            parts.append([c, c])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


# -------------------------------------------------------------------------------------------- ranks


class _Group:
    """torch.distributed when torchrun started this process (WORLD_SIZE > 1), else a group of one."""

    def __init__(self, rank: int = 0, world: int = 1, owned: bool = False):
        self.rank, self.world, self.owned = rank, world, owned

    @classmethod
    def start(cls, device: str | torch.device | None) -> tuple[_Group, torch.device]:
        dev = resolve_device(device)
        world = int(os.environ.get("WORLD_SIZE") or 1)
        if world <= 1:
            return cls(), dev
        import torch.distributed as dist

        if dev.type == "cuda" and (device is None or torch.device(device).index is None):  # one GPU per rank
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK") or 0))
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        owned = not dist.is_initialized()
        if owned:  # the final barrier waits for the slowest rank's share, which can take hours
            dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=timedelta(hours=24))
        return cls(dist.get_rank(), dist.get_world_size(), owned), dev

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.owned:
            import torch.distributed as dist

            dist.destroy_process_group()


# ------------------------------------------------------------------------------------------- runner


@dataclass
class _Plan:
    """What rank 0 decided; broadcast to the other ranks."""

    settings: Settings
    layers: list[tuple[str, int]]  # every layer of the gallery in model order, with its channel count
    batches: list[Batch]  # the run's batches (finished ones included)
    todo: list[Batch]  # batches with at least one unfinished unit
    done: set[tuple[str, int]] = field(default_factory=set)  # units finished before the run


def build_gallery(model: str | Path | LoadedModel, out: str | Path, layers: Sequence[str] | None = None, *,
                  weights: str | Path | None = "default", steps: int | None = None, size: int | None = None,
                  seed: int = 0, device: str | torch.device | None = None, batch_size: int | None = None,
                  channels: Sequence[int] | None = None, overwrite: bool = False, compile: bool | str = False,
                  log: Log | None = None, tensorboard: TensorBoardLog | None = None) -> GalleryResult:
    """Render one image per channel of `layers` (default: the recipe's default layer) into the folder `out`.

    Units already in `out` are skipped (see the module docstring for resume, determinism and torchrun).
    `batch_size` is the number of units per engine call (default: 64 on CUDA, 16 on CPU; it does not change images);
    `channels` limits every layer to those channel numbers. Ctrl-C raises KeyboardInterrupt once every
    finished unit is on disk (the batch in progress is dropped). `compile` is render's: the warm-up is paid
    by the first batch (and once more by a smaller last one), every other batch reuses it. `tensorboard` logs
    each rendered batch's objective and gradient norm per unit per step, and its images.
    """
    out = Path(out)
    log = log or _stderr
    group, dev = _Group.start(device)
    prefix = f"[rank {group.rank}/{group.world}] " if group.distributed else ""
    folder = GalleryFolder(out)
    with contextlib.ExitStack() as stack:
        stack.callback(group.close)
        loaded: LoadedModel | None = None
        plan: _Plan | None = None
        if group.rank == 0:
            try:
                loaded = model if isinstance(model, LoadedModel) else load_model(model, weights)
                plan = _make_plan(loaded, folder, stack, layers, steps=steps, size=size, seed=seed, device=dev,
                                  batch_size=batch_size, channels=channels, overwrite=overwrite, log=log)
            except Exception as exc:
                if group.distributed:  # tell the other ranks, or they wait for the plan until the timeout
                    group.broadcast((None, str(exc) if isinstance(exc, DreamlabError) else "rank 0 failed"))
                raise
        plan, failure = group.broadcast((plan, None))
        if plan is None:
            raise DreamlabError(failure or "rank 0 failed")
        if loaded is None:  # after rank 0 has loaded it, so that a download happens once
            loaded = model if isinstance(model, LoadedModel) else load_model(model, weights)

        total = sum(len(b.channels) for b in plan.batches)
        done_before = sum(1 for b in plan.batches for c in b.channels if (b.layer, c) in plan.done)
        if group.rank == 0:
            shared = f"; {len(plan.todo)} batches to do, shared by {group.world} ranks" if group.distributed else ""
            log(f"{out}: {total} units in {len(plan.batches)} batches, {done_before} already done{shared}")
        mine = plan.todo[group.rank::group.world]
        rendered = 0
        for i, batch in enumerate(mine):
            start = time.monotonic()
            new = _render_batch(loaded, folder, plan, batch, dev, progress=not group.distributed, compile=compile,
                                tensorboard=tensorboard)
            rendered += new
            if group.rank == 0:
                _write_pages(folder, plan, [batch.layer])
            log(f"{prefix}{batch.label}: {new} units in {time.monotonic() - start:.1f} s "
                f"(batch {i + 1}/{len(mine)})")
        group.barrier()
        manifest = None
        if group.rank == 0:
            # sheets with other ranks' units, and any that a stopped run did not get to write
            stale = {b.layer for b in plan.todo} if group.distributed else set()
            stale |= {layer for layer, _ in plan.layers if not (out / sheet_file(layer)).is_file()}
            manifest = _write_pages(folder, plan, stale)
        return GalleryResult(out, manifest, rendered, done_before, total)


def _make_plan(loaded: LoadedModel, folder: GalleryFolder, stack: contextlib.ExitStack,
               layers: Sequence[str] | None, *, steps: int | None, size: int | None, seed: int,
               device: torch.device, batch_size: int | None, channels: Sequence[int] | None, overwrite: bool,
               log: Log) -> _Plan:
    """Check the request and the folder (holding its lock on `stack` from here on) and list the batches."""
    recipe = loaded.recipe
    size = int(size if size is not None else recipe.input_size)
    steps = int(steps if steps is not None else recipe.steps)
    order, counts = _layer_channels(loaded, size)
    wanted = list(dict.fromkeys(layers)) if layers else ([recipe.default_layer] if recipe.default_layer else [])
    if not wanted:
        raise DreamlabError(f"recipe {recipe.name!r} names no default layer; give --layers (`dreamlab layers "
                            f"{recipe.name}` lists them)")
    for layer in wanted:
        if layer not in counts:
            raise unknown("layer", layer, order, hint=f"`dreamlab layers {recipe.name}` lists them")
    if channels is not None:
        plan_batches([(layer, counts[layer]) for layer in wanted], channels, 1)  # fail before touching the folder

    stack.enter_context(folder.locked())
    if folder.remove_temp_files():
        log(f"{folder.out}: removed temporary files left by a stopped run")
    if overwrite:
        removed = folder.remove_units()
        if removed:
            log(f"{folder.out}: --overwrite removed {removed} units of an earlier run")
    records = folder.read_records()
    _check_settings(records.values(), loaded, steps, size, seed, folder.out)
    settings = Settings(model=recipe.name, recipe=recipe.name, recipe_hash=recipe.hash(), weights=loaded.weights,
                        steps=steps, size=size, seed=int(seed))
    batch_size = batch_size or (64 if device.type == "cuda" else 16)
    batches = plan_batches([(layer, counts[layer]) for layer in wanted], channels, batch_size)
    done = set(records)
    todo = [b for b in batches if any((b.layer, c) not in done for c in b.channels)]
    shown = set(wanted) | {layer for layer, _ in records}
    gallery_layers = [(name, counts[name]) for name in order if name in shown and name in counts]
    return _Plan(settings, gallery_layers, batches, todo, done)


def _layer_channels(loaded: LoadedModel, size: int) -> tuple[list[str], dict[str, int]]:
    """(every module name in model order, channel count of each addressable one) at the render size."""
    recipe = loaded.recipe
    try:
        rows = layer_table(loaded.model, input_size=size, channels=recipe.channels)
    except RuntimeError as exc:
        raise DreamlabError(f"{recipe.name} does not run on {size}px images ({str(exc).splitlines()[0]}); "
                            f"use --size {recipe.input_size}") from None
    counts = {r.name: r.channels for r in rows if r.channels and r.calls == 1}
    return [r.name for r in rows], counts  # type: ignore[return-value]


def _check_settings(records: Any, loaded: LoadedModel, steps: int, size: int, seed: int, out: Path) -> None:
    """Refuse to mix settings in one folder."""
    wanted = {"recipe": loaded.recipe.name, "recipe_hash": loaded.recipe.hash(), "weights": loaded.weights,
              "steps": steps, "size": size, "seed": int(seed)}
    for record in records:
        for key in SETTING_KEYS:
            if record.get(key) != wanted[key]:
                raise DreamlabError(
                    f"{str(out)!r} holds units made with {key}={record.get(key)!r}, this run has "
                    f"{key}={wanted[key]!r}; use another --out, or --overwrite to replace them")


def _render_batch(loaded: LoadedModel, folder: GalleryFolder, plan: _Plan, batch: Batch, device: torch.device,
                  progress: bool, compile: bool | str = False, tensorboard: TensorBoardLog | None = None) -> int:
    """Render one batch and save its unfinished units; return how many were saved."""
    s = plan.settings
    count = dict(plan.layers)[batch.layer]
    thresholds, on_snapshot = with_snapshots(tensorboard, s.steps, (), None)
    result = render(loaded, channel(batch.layer, range(count)), units=batch.channels, steps=s.steps, size=s.size,
                    seed=s.seed, device=device, progress=progress, compile=compile, thresholds=thresholds,
                    on_snapshot=on_snapshot)
    if tensorboard is not None:
        tensorboard.write_result(result)
    if result.interrupted:  # the images are part-way: keep none of them
        raise KeyboardInterrupt
    written = 0
    for ch, image, score in zip(batch.channels, result.images, result.final_scores.tolist(), strict=True):
        if (batch.layer, ch) in plan.done:
            continue
        unit = f"{batch.layer}:{ch}"
        record = {
            "unit": unit, "layer": batch.layer, "channel": ch, "objective": unit,
            "activation": score if math.isfinite(score) else None,
            "seed": s.seed, "steps": s.steps, "size": s.size, "recipe": s.recipe, "recipe_hash": s.recipe_hash,
            "weights": s.weights, "device": device.type, "precision": result.provenance.get("dreamlab:precision", ""),
            "file": unit_file(batch.layer, ch),
        }
        text = {**result.provenance, "dreamlab:objective": unit, "dreamlab:unit": unit,
                "dreamlab:score": f"{score:.6g}"}
        folder.write_unit(record, image, text)
        written += 1
    return written


def _write_pages(folder: GalleryFolder, plan: _Plan, sheets_for: Iterable[str]) -> dict[str, Any]:
    """Rebuild the contact sheets of `sheets_for`, then manifest.json and index.html, from the records on disk."""
    records = folder.read_records()
    sheets_for = set(sheets_for)
    s = plan.settings
    layers, units = [], []
    for layer, count in plan.layers:
        chans = sorted(ch for (name, ch) in records if name == layer)
        entry: dict[str, Any] = {"name": layer, "channels": count}
        if chans:
            entry["sheet"] = folder.write_sheet(layer, chans) if layer in sheets_for else sheet_file(layer)
        layers.append(entry)
        units += [records[(layer, ch)] for ch in chans]
    manifest = {"model": s.model, "recipe": s.recipe, "recipe_hash": s.recipe_hash, "weights": s.weights,
                "steps": s.steps, "size": s.size, "seed": s.seed, "layers": layers, "units": units}
    folder.write_manifest(manifest)
    return manifest


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


