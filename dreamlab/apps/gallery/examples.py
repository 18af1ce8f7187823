"""A gallery's dataset examples (`gallery --examples DIR`): each unit's best crops of the given photos, shown
under its render in the page's large view (dreamlab/inspect/examples.py finds them).

Per layer, `.examples/<layer folder>.json` records which images (names and file sizes), how many per unit, at
what size and for which model (recipe hash, weights, weights_seed), and each unit's examples; a rerun with the
same key finds only the units it lacks (added channels, a missing strip), another key finds every unit's again.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dreamlab.apps.gallery.naming import examples_file, layer_folder
from dreamlab.inspect.examples import checked_images, example_tiles, examples, never_on_tile
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
                   top: int, size: int, log: Callable[[str], None], weights_seed: int | None = None) -> None:
    """Find and write the examples of `channels` of `layer` that the folder does not hold yet for the same
    images, count, size and model (recipe hash, weights, random init's `weights_seed`). The layer's record keeps
    the examples of its other channels: with the same key they stay as they are, with another key (other photos,
    K or weights) they are found again too, so that no strip on the page is stale and none is dropped."""
    sources = checked_images(images)
    # a file by its size; a sample photo (china, flower) by its name, which is all there is to it
    key = {"images": [[name, Path(source).stat().st_size if Path(source).is_file() else str(source)]
                      for name, source in sources], "top": top, "size": size,
           "recipe_hash": loaded.recipe.hash(), "weights": loaded.weights, "weights_seed": weights_seed}
    old = examples_record(out, layer)
    old_units = {ch: unit for ch, unit in (old or {}).get("units", {}).items()
                 if isinstance(unit, dict) and ch.isdigit()}
    units: dict[str, Any] = {}
    if old is not None and old.get("key") == key:  # keep what is there and whole
        units = {ch: unit for ch, unit in old_units.items() if is_whole_png(out / examples_file(layer, int(ch)))}
    wanted = sorted(set(channels) | {int(ch) for ch in old_units})  # the run's, and the ones found before
    todo = [ch for ch in wanted if str(ch) not in units]
    if not todo:
        return
    log(f"{layer}: dataset examples of {len(todo)} unit{'s' if len(todo) != 1 else ''} from {len(sources)} "
        f"image{'s' if len(sources) != 1 else ''}")
    for start in range(0, len(todo), UNITS_PER_PASS):
        part = todo[start:start + UNITS_PER_PASS]
        found = examples(loaded, layer, part, [source for _, source in sources], top=top, size=size)
        for ch, row in zip(part, found.units):
            tiles = example_tiles(row, len(row)) if row else never_on_tile("")  # a dead unit says so
            strip = grid(tiles, columns=max(1, len(row)))
            text = {"dreamlab:unit": f"{layer}:{ch}", "dreamlab:examples": ",".join(
                f"{e.image}={e.score:.6g}" for e in row), **({} if row else {"dreamlab:never_on": str(ch)})}
            atomic_write_bytes(out / examples_file(layer, ch), png_bytes(strip, text))
            units[str(ch)] = {"file": examples_file(layer, ch), "images": [e.image for e in row],
                              "scores": [round(e.score, 6) for e in row], "boxes": [list(e.box) for e in row]}
    record = {"layer": layer, "key": key, "units": dict(sorted(units.items(), key=lambda kv: int(kv[0])))}
    atomic_write_text(out / EXAMPLES_DIR / f"{layer_folder(layer)}.json", json.dumps(record, indent=1) + "\n")


def unit_examples(record: dict[str, Any] | None, ch: int) -> dict[str, Any]:
    """What a unit's manifest entry shows of its examples: the strip's file, the images and their scores."""
    unit = (record or {}).get("units", {}).get(str(ch))
    if not isinstance(unit, dict):
        return {}
    return {"examples": unit.get("file"), "example_images": unit.get("images"), "example_scores": unit.get("scores")}
