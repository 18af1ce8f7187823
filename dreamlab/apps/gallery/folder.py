"""The files of one gallery folder: unit PNGs and their records, contact sheets, manifest and page, written
atomically; the folder's lock, and the clean-up of temporary files a killed run left behind."""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dreamlab.apps.gallery.naming import (
    ANOTHER_OUT,
    LOCK_NAME,
    MANIFEST_NAME,
    UNITS_DIR,
    layer_folder,
    sheet_file,
    unit_files,
)
from dreamlab.apps.gallery.page import INDEX_NAME, write_index
from dreamlab.errors import DreamlabError
from dreamlab.inspect.tiles import draw_labels, upscale
from dreamlab.io import (
    ALPHA_BACKGROUND,
    atomic_write_bytes,
    atomic_write_text,
    grid,
    is_whole_png,
    load_image,
    png_bytes,
)
from dreamlab.optvis.units import format_units

SHEET_TILE = 128  # largest tile side in contact sheets (bigger renders are scaled down)
SHEET_MIN_TILE = 64  # smaller renders are enlarged (nearest neighbour) so that their channel labels fit
_TEMP_FILE = re.compile(r"^\..*\.[0-9a-f]{12}\.tmp$")  # what io.atomic_write_bytes writes before its rename


class GalleryFolder:
    """The files of one gallery: unit PNGs and records, contact sheets, manifest and page."""

    def __init__(self, out: Path):
        self.out = out
        self.units = out / UNITS_DIR
        self._thumbs: dict[tuple[str, int], Tensor] = {}  # contact-sheet tiles, uint8

    def record_path(self, layer: str, ch: int) -> Path:
        """The JSON record of a finished unit."""
        return self.units / layer_folder(layer) / f"{ch:04d}.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the folder for the run: two runs writing one gallery would clash. The lock
        file, `.units/lock`, is removed when the run ends (while still held), so a finished gallery has none."""
        _check_kind(self.units, folder=True)
        _check_kind(self.units / LOCK_NAME, folder=False)
        self.units.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # no flock (Windows): go without
            yield
            return
        path = self.units / LOCK_NAME
        for _ in range(100):
            handle = open(path, "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise DreamlabError(f"another dreamlab gallery run is writing {str(self.out)!r}; wait for it to "
                                    f"finish or use {ANOTHER_OUT}") from None
            except OSError:  # a file system without locks (some network mounts): go without
                with handle:
                    yield
                return
            # a run that ended between our open and our flock removed the file we hold: lock the current one
            try:
                same = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
            except OSError:
                same = False
            if same:
                break
            handle.close()
        else:
            raise DreamlabError(f"could not lock {str(path)!r}: it kept being replaced; is another program "
                                f"removing it? Run again, or use {ANOTHER_OUT}")
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                path.unlink()  # while held: a run that opened it meanwhile sees it gone and locks a new one
            handle.close()  # the kernel drops the lock when the process ends, however it ends

    def check_paths(self, units: Iterable[tuple[str, int]], copies: int) -> None:
        """Before rendering: refuse a folder (or other non-file) where one of `units`' PNGs, records or contact
        sheets, the manifest or the page goes, and a file where a layer's folder goes; writing there would fail
        after the render."""
        _check_kind(self.out / MANIFEST_NAME, folder=False)
        _check_kind(self.out / INDEX_NAME, folder=False)
        layers: set[str] = set()
        for layer, ch in units:
            if layer not in layers:
                layers.add(layer)
                _check_kind(self.out / layer_folder(layer), folder=True)
                _check_kind(self.units / layer_folder(layer), folder=True)
                _check_kind(self.out / sheet_file(layer), folder=False)
            for file in unit_files(layer, ch, copies):
                _check_kind(self.out / file, folder=False)
            _check_kind(self.record_path(layer, ch), folder=False)

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
            files = _files_of(record)
            # a truncated PNG (a copy cut short, a full disk) is not done: the unit is rendered again
            if files and record.get("file") == files[0] and record.get("files", files) == files \
                    and all(is_whole_png(self.out / f) for f in files):
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
            for file in _files_of({**record, "layer": layer, "channel": ch}) or []:
                (self.out / file).unlink(missing_ok=True)
            (self.out / sheet_file(layer)).unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            count += 1
        return count

    def write_unit(self, record: dict[str, Any], images: Sequence[Tensor], texts: Sequence[dict[str, str]]) -> None:
        """The PNGs first (`record["files"]`, or its one `"file"`), then the record: a record always means whole
        PNGs are there."""
        layer, ch = record["layer"], record["channel"]
        for file, image, text in zip(record.get("files", [record["file"]]), images, texts, strict=True):
            atomic_write_bytes(self.out / file, png_bytes(image, text))
        atomic_write_text(self.record_path(layer, ch), json.dumps(record, indent=1, allow_nan=False) + "\n")
        self._thumbs[(layer, ch)] = _thumbnail(images[0])

    def write_sheet(self, layer: str, units: Sequence[tuple[int, str]],
                    classes: Mapping[int, str] | None = None) -> str:
        """Tile the layer's finished units, (channel, first file) in channel order, into its contact sheet,
        each labelled with its channel (and its class name from `classes`, for the model's output); return its
        path."""
        tiles = []
        for ch, file in units:
            if (layer, ch) not in self._thumbs:
                self._thumbs[(layer, ch)] = _thumbnail(load_image(self.out / file))
            tiles.append(self._thumbs[(layer, ch)])
        tiles = torch.stack(tiles).float() / 255
        tiles = upscale(tiles, max(1, math.ceil(SHEET_MIN_TILE / max(tiles.shape[-2:]))))
        classes = classes or {}
        tiles = draw_labels(tiles, [f"{ch} {classes[ch]}" if ch in classes else str(ch) for ch, _ in units])
        sheet = grid(tiles, columns=math.ceil(math.sqrt(len(tiles))))
        text = {"dreamlab:layer": layer, "dreamlab:channels": format_units([ch for ch, _ in units])}
        atomic_write_bytes(self.out / sheet_file(layer), png_bytes(sheet, text))
        return sheet_file(layer)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """manifest.json, then index.html (each replaced atomically)."""
        atomic_write_text(self.out / MANIFEST_NAME, json.dumps(manifest, indent=1, allow_nan=False) + "\n")
        write_index(self.out, manifest)


def _check_kind(path: Path, folder: bool) -> None:
    """`path` is absent or is what the gallery writes there (a folder, or a file); else one line saying what to
    remove."""
    if not path.exists() or path.is_dir() == folder:
        return
    found, wanted = ("a folder", "file") if path.is_dir() else ("a file", "folder")
    raise DreamlabError(f"{str(path)!r} is {found}, where the gallery keeps a {wanted}; remove it (or give "
                        f"{ANOTHER_OUT}) and run again")


def _files_of(record: dict[str, Any]) -> list[str] | None:
    """The PNGs a record's unit should have (one, or its --diversity images), or None for a malformed count."""
    copies = record.get("diversity", 1)
    if not isinstance(copies, int) or isinstance(copies, bool) or copies < 1:
        return None
    return unit_files(record["layer"], record["channel"], copies)


def _thumbnail(image: Tensor) -> Tensor:
    """A contact-sheet tile: the image scaled down to SHEET_TILE pixels at most, as uint8; a transparent render
    (RGBA, grey + alpha) laid over grey as `load_image` lays a unit read back from disk, so tiles made now and on
    a resume match."""
    if image.shape[0] in (2, 4):
        alpha = image[-1:].float()
        image = image[:-1].float() * alpha + ALPHA_BACKGROUND * (1 - alpha)
    if max(image.shape[-2:]) > SHEET_TILE:
        image = F.interpolate(image[None].float(), size=(SHEET_TILE, SHEET_TILE), mode="bilinear",
                              antialias=True, align_corners=False)[0]
    return (image.float().clamp(0, 1) * 255).round().to(torch.uint8)
