"""Where a gallery keeps each file: folder and file names of units, contact sheets and records."""
from __future__ import annotations

import hashlib

from dreamlab.apps.gallery.page import INDEX_NAME
from dreamlab.io import safe_name

UNITS_DIR = ".units"
LOCK_NAME = "lock"
MANIFEST_NAME = "manifest.json"
SHEET_NAME = "contact_sheet.png"
RESERVED_FOLDERS = {INDEX_NAME, MANIFEST_NAME, UNITS_DIR}
# how messages name two of build_gallery's arguments, as the keyword and the flag (build_gallery serves the CLI too)
ANOTHER_OUT = "another out folder (--out)"
OVERWRITE = "overwrite=True (--overwrite)"


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


def unit_files(layer: str, ch: int, copies: int = 1) -> list[str]:
    """A unit's PNGs: `unit_file`'s one, or with --diversity N its N images, `..._0007_1.png` to `..._0007_N.png`."""
    if copies == 1:
        return [unit_file(layer, ch)]
    first = unit_file(layer, ch)[:-len(".png")]
    return [f"{first}_{k}.png" for k in range(1, copies + 1)]


def sheet_file(layer: str) -> str:
    """The contact sheet's path of `layer`, relative to the gallery folder."""
    return f"{layer_folder(layer)}/{SHEET_NAME}"


def examples_file(layer: str, ch: int) -> str:
    """A unit's dataset examples (`gallery --examples`): its best crops in a row, beside its PNG."""
    return unit_file(layer, ch)[:-len(".png")] + "_examples.png"
