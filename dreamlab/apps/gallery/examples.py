"""A gallery's dataset examples (`gallery --examples DIR`): each unit's best crops of the given photos, shown
under its render in the page's large view (dreamlab/inspect/examples.py finds them).

Per layer, `.examples/<layer folder>.json` records which images (names and file sizes), how many per unit and
at what size; a rerun with the same ones and every strip on disk skips the layer, anything else finds them again.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dreamlab.apps.gallery.naming import examples_file, layer_folder
from dreamlab.inspect.examples import checked_images, example_tiles, examples
from dreamlab.io import atomic_write_bytes, atomic_write_text, grid, is_whole_png, png_bytes
from dreamlab.models.loading import LoadedModel

EXAMPLES_DIR = ".examples"
UNITS_PER_PASS = 128  # units found per pass over the images: bounds the crops held in memory


def examples_record(out: Path, layer: str) -> dict[str, Any] | None:
    """The layer's examples record, or None when there is none that reads."""
    try:
        record = json.loads((out / EXAMPLES_DIR / f"{layer_folder(layer)}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("units"), dict) else None


def write_examples(out: Path, loaded: LoadedModel, layer: str, channels: Sequence[int], images: str | Path,
                   top: int, size: int, log: Callable[[str], None]) -> None:
    """Find and write the examples of `channels` of `layer`, unless the folder already holds them for the same
    images, count and size."""
    sources = checked_images(images)
    key = {"images": [[name, Path(source).stat().st_size] for name, source in sources], "top": top, "size": size}
    old = examples_record(out, layer)
    if old is not None and old.get("key") == key and all(
            str(ch) in old["units"] and is_whole_png(out / examples_file(layer, ch)) for ch in channels):
        return
    log(f"{layer}: dataset examples of {len(channels)} units from {len(sources)} images")
    units: dict[str, Any] = {}
    for start in range(0, len(channels), UNITS_PER_PASS):
        part = list(channels[start:start + UNITS_PER_PASS])
        found = examples(loaded, layer, part, [source for _, source in sources], top=top, size=size)
        for ch, row in zip(part, found.units):
            strip = grid(example_tiles(row, max(1, len(row))), columns=max(1, len(row)))
            text = {"dreamlab:unit": f"{layer}:{ch}", "dreamlab:examples": ",".join(
                f"{e.image}={e.score:.6g}" for e in row)}
            atomic_write_bytes(out / examples_file(layer, ch), png_bytes(strip, text))
            units[str(ch)] = {"file": examples_file(layer, ch), "images": [e.image for e in row],
                              "scores": [round(e.score, 6) for e in row], "boxes": [list(e.box) for e in row]}
    record = {"layer": layer, "key": key, "units": units}
    atomic_write_text(out / EXAMPLES_DIR / f"{layer_folder(layer)}.json", json.dumps(record, indent=1) + "\n")


def unit_examples(record: dict[str, Any] | None, ch: int) -> dict[str, Any]:
    """What a unit's manifest entry shows of its examples: the strip's file, the images and their scores."""
    unit = (record or {}).get("units", {}).get(str(ch))
    if not isinstance(unit, dict):
        return {}
    return {"examples": unit.get("file"), "example_images": unit.get("images"), "example_scores": unit.get("scores")}
