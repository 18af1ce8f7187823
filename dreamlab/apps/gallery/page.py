"""The static HTML index of a `dreamlab gallery` folder, plus atomic file writers.

The page opens straight from disk (file://) and needs nothing else: its skeleton, CSS and JS are the files in
static/ (index.html, page.css, page.js), inlined here; the unit metadata travels inside the page as a JSON
block, and every image is a relative link into the folder. Python only fills in the data.

>>> write_index(Path("gallery/googlenet"), manifest)  # doctest: +SKIP
PosixPath('gallery/googlenet/index.html')
"""
from __future__ import annotations

import functools
import html
import json
import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote

from dreamlab.io import atomic_write_bytes

INDEX_NAME = "index.html"
DATA_ELEMENT_ID = "gallery-data"  # id of the <script type="application/json"> block holding the manifest
# Renders up to this size are shown with their pixels as squares (image-rendering: pixelated), as the contact
# sheet enlarges them: a tile is about 112 px and the large view about 600 px, so a 64 px render is enlarged at
# least 1.75x, a 28 px one 4x to 20x, where smoothing blurs what the optimizer drew. Bigger ones stay smooth
# (nearest-neighbour at 2.7x or less makes uneven pixel widths).
PIXELATED_MAX_SIZE = 64
DEAD_TITLE = ("stayed at activation 0: no image the optimizer reached turned this unit on, so its image shows "
              "nothing it responds to")


# ---------------------------------------------------------------------------------------------- writing


def write_index(out_dir: Path | str, manifest: Mapping[str, Any]) -> Path:
    """Write `out_dir/index.html` for `manifest` (the dict the runner saves as manifest.json); return its path.

    File paths in the manifest ("sheet", "file") are relative to `out_dir`, with "/" separators.
    """
    # A lone surrogate (from a file name that is not valid UTF-8) can only be shown as U+FFFD.
    data = render_index(manifest).encode("utf-8", errors="replace")
    return atomic_write_bytes(Path(out_dir) / INDEX_NAME, data)


# --------------------------------------------------------------------------------------------- rendering


def render_index(manifest: Mapping[str, Any]) -> str:
    """The index page for `manifest`, as a str."""
    # Indices are positions in manifest["units"], which the page's JSON block carries as is.
    units = {i: u for i, u in enumerate(manifest.get("units") or []) if isinstance(u, Mapping)}
    layers = [layer for layer in manifest.get("layers") or [] if isinstance(layer, Mapping)]
    model = str(manifest.get("model") or "model")

    # Sections follow the manifest's layer order; units of a layer it does not list get a section at the end.
    info: dict[str, Mapping[str, Any]] = {}
    members: dict[str, list[int]] = {}
    for layer in layers:
        name = str(layer.get("name", ""))
        info.setdefault(name, layer)
        members.setdefault(name, [])
    for i, unit in units.items():
        members.setdefault(_unit_layer(unit), []).append(i)

    # one steps for the whole gallery goes in the header; steps that differ per layer go in each layer's head
    per_layer = "steps" in manifest and manifest["steps"] is None
    sections = [_section(j, name, info.get(name, {}), [(i, units[i]) for i in idx], per_layer)
                for j, (name, idx) in enumerate(members.items())]
    nav = "".join(f'<li><a href="#layer-{j}">{_esc(name)}</a></li>' for j, name in enumerate(members))
    body = "\n".join(sections) if sections else '<p class="empty">This gallery is empty.</p>'
    n_units, n_layers = len(units), len(members)
    example = _unit_key(next(iter(units.values()))) if units else "layer:channel"

    return _asset("index.html").substitute(
        model=_esc(model), example=_esc(example), run_meta=_run_meta(manifest, n_units, n_layers), nav=nav,
        body=body, body_class=_body_class(manifest), data_id=DATA_ELEMENT_ID, data=json_for_script(manifest),
        css=_asset("page.css").template,
        js=_asset("page.js").template)


@functools.cache
def _asset(name: str) -> Template:
    """A file of static/ (package data): the page's HTML skeleton with $-placeholders, its CSS, its script."""
    return Template(resources.files("dreamlab.apps.gallery").joinpath("static", name).read_text(encoding="utf-8"))


def json_for_script(value: Any) -> str:
    """JSON for a <script type="application/json"> block: no string in it can close the element.

    `<`, `>` and `&` only occur inside JSON strings, where \\u escapes mean the same. Non-finite floats
    (invalid JSON for JSON.parse) become the strings "NaN", "Infinity", "-Infinity".
    """
    text = json.dumps(_finite(value), ensure_ascii=True, separators=(",", ":"), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def url_path(path: object) -> str:
    """A relative file path as a URL path for src/href: %-quoted, keeping "/" (so '#', '?', ':' are inert)."""
    return quote(str(path), safe="/", errors="surrogateescape")


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _unit_layer(unit: Mapping[str, Any]) -> str:
    if "layer" in unit:
        return str(unit["layer"])
    return str(unit.get("unit", "")).rpartition(":")[0]


def _unit_channel(unit: Mapping[str, Any]) -> str:
    if "channel" in unit:
        return str(unit["channel"])
    return str(unit.get("unit", "")).rpartition(":")[2]


def _unit_key(unit: Mapping[str, Any]) -> str:
    """The name the search box takes: layer:channel."""
    return f"{_unit_layer(unit)}:{_unit_channel(unit)}"


def _body_class(manifest: Mapping[str, Any]) -> str:
    """'pixelated' for a gallery of small renders (PIXELATED_MAX_SIZE), 'alpha' for transparent ones (shown over
    a checkerboard), space-separated; '' for neither."""
    size = manifest.get("size")
    small = isinstance(size, int) and not isinstance(size, bool) and 0 < size <= PIXELATED_MAX_SIZE
    return " ".join(name for name, on in (("pixelated", small), ("alpha", manifest.get("alpha") is True)) if on)


def never_on(unit: Mapping[str, Any]) -> bool:
    """A unit whose image (every one of its --diversity images) stayed at activation exactly 0 for every step; in
    a manifest without that record (written before it), one whose images ended at 0."""
    if isinstance(unit.get("never_on"), bool):
        return unit["never_on"]
    values = unit.get("activations")
    if not isinstance(values, list) or not values:
        values = [unit.get("activation")]
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0 for v in values)


def _run_meta(manifest: Mapping[str, Any], n_units: int, n_layers: int) -> str:
    """The run-info list: model, recipe, recipe_hash, weights, then any other top-level field (as JSON)."""
    rows = []
    order = ["model", "recipe", "recipe_hash", "weights"]
    order += [k for k in manifest if k not in order and k not in ("layers", "units")]
    for key in order:
        if key not in manifest:
            continue
        value = manifest[key]
        if key == "steps" and value is None:  # the manifest's None: the layers have different steps
            text = "per layer"
        else:
            text = value if isinstance(value, str) else json.dumps(_finite(value), default=str)
        rows.append(f'<div><dt>{_esc(key)}</dt><dd title="{_esc(text)}">{_esc(text)}</dd></div>')
    rows.append(f"<div><dt>units</dt><dd>{n_units} in {n_layers} layer{'s' if n_layers != 1 else ''}</dd></div>")
    return f'<dl class="run-meta">{"".join(rows)}</dl>'


def _section(j: int, name: str, layer: Mapping[str, Any], units: list[tuple[int, Mapping[str, Any]]],
             show_steps: bool = False) -> str:
    """One layer: heading (name, channel count, its steps when `show_steps`, contact-sheet link) and its grid of
    thumbnails."""
    channels = layer.get("channels")
    if channels is None:
        count = f"{len(units)} shown"
    else:
        noun = "channel" if str(channels) == "1" else "channels"
        count = f"{channels} {noun}" + ("" if str(channels) == str(len(units)) else f" · {len(units)} shown")
    steps = layer.get("steps")
    if show_steps and steps is not None:
        count += f" · {steps} steps"
    sheet = layer.get("sheet")
    link = f' <a class="sheet" href="{_esc(url_path(sheet))}">contact sheet</a>' if sheet else ""
    tiles = "\n".join(_tile(i, unit) for i, unit in units)
    return (f'<section class="layer" id="layer-{j}" data-layer="{_esc(name)}">\n'
            f'<div class="layer-head"><h2>{_esc(name)}</h2><span class="count">{_esc(count)}</span>{link}</div>\n'
            f'<div class="grid">\n{tiles}\n</div>\n</section>')


def _tile(i: int, unit: Mapping[str, Any]) -> str:
    """A thumbnail: a link to the image (works without JS) that the script turns into 'open the large view'."""
    key = _esc(_unit_key(unit))
    channel = _esc(_unit_channel(unit))
    named = unit.get("class")  # a class logit's class name (gallery --layers logit): shown after the number
    if isinstance(named, str) and named:
        channel = f"{channel} {_esc(named)}"
    dead = never_on(unit)  # dimmed, with a "0" badge and a title that says why
    label = f"{_unit_key(unit)} ({named})" if isinstance(named, str) and named else _unit_key(unit)
    title = f"{label} {DEAD_TITLE}" if dead else label
    attrs = f'id="u{i}" data-idx="{i}" data-key="{key}" title="{_esc(title)}"'
    badge = '<span class="badge" aria-hidden="true">0</span>' if dead else ""
    file = unit.get("file")
    if not file:
        return f'<button type="button" class="unit missing{" dead" if dead else ""}" {attrs}>' \
               f'<span class="noimg">no image</span>{badge}<span class="ch">{channel}</span></button>'
    src = _esc(url_path(file))
    files = unit.get("files")
    more = f" ×{len(files)}" if isinstance(files, list) and len(files) > 1 else ""  # --diversity: the viewer has all
    alt = f"{label} (stayed at activation 0)" if dead else label
    return (f'<a class="unit{" dead" if dead else ""}" href="{src}" {attrs}><img src="{src}" loading="lazy" '
            f'decoding="async" alt="{_esc(alt)}">{badge}<span class="ch">{channel}{more}</span></a>')
