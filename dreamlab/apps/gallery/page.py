"""The static HTML index of a `dreamlab gallery` folder, plus atomic file writers.

The page opens straight from disk (file://) and needs nothing else: CSS and JS are inline, the unit
metadata travels inside the page as a JSON block, and every image is a relative link into the folder.

>>> write_index(Path("gallery/googlenet"), manifest)  # doctest: +SKIP
PosixPath('gallery/googlenet/index.html')
"""
from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dreamlab.io import atomic_write_bytes, atomic_write_text  # noqa: F401  (re-exported for the gallery runner)

INDEX_NAME = "index.html"
DATA_ELEMENT_ID = "gallery-data"  # id of the <script type="application/json"> block holding the manifest


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

    sections = [_section(j, name, info.get(name, {}), [(i, units[i]) for i in idx])
                for j, (name, idx) in enumerate(members.items())]
    nav = "".join(f'<li><a href="#layer-{j}">{_esc(name)}</a></li>' for j, name in enumerate(members))
    body = "\n".join(sections) if sections else '<p class="empty">This gallery is empty.</p>'
    n_units, n_layers = len(units), len(members)
    example = _unit_key(next(iter(units.values()))) if units else "layer:channel"

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="dreamlab">
<title>{_esc(model)} · dreamlab gallery</title>
<link rel="icon" href="data:,">
<style>{_CSS}</style>
</head>
<body>
<header class="top">
<div class="bar">
<h1>{_esc(model)} <span class="sub">dreamlab gallery</span></h1>
<form id="jump" role="search" autocomplete="off">
<label for="jump-input" class="visually-hidden">Jump to unit</label>
<input id="jump-input" type="search" placeholder="Jump to layer:channel, e.g. {_esc(example)}" spellcheck="false">
<button type="submit">Go</button>
<p id="jump-msg" role="status" aria-live="polite"></p>
</form>
</div>
</header>
<main>
<section class="intro">
{_run_meta(manifest, n_units, n_layers)}
<nav aria-label="Layers"><ul class="layer-nav">{nav}</ul></nav>
</section>
{body}
</main>
<footer>Made by dreamlab. Click a unit to enlarge it; ← and → step through units; press / to search.</footer>
<dialog id="viewer" aria-labelledby="viewer-title">
<div class="viewer-head">
<h2 id="viewer-title"></h2>
<button type="button" id="viewer-prev" title="Previous unit (←)" aria-label="Previous unit">←</button>
<button type="button" id="viewer-next" title="Next unit (→)" aria-label="Next unit">→</button>
<button type="button" id="viewer-close" autofocus title="Close (Esc)" aria-label="Close">✕</button>
</div>
<div class="viewer-body">
<div class="viewer-img"><img id="viewer-img" alt=""></div>
<div class="viewer-side">
<dl id="viewer-meta" class="meta"></dl>
<p class="links"><a id="viewer-file" href="">open image</a> · <a id="viewer-link" href="">permalink</a></p>
</div>
</div>
</dialog>
<script type="application/json" id="{DATA_ELEMENT_ID}">{json_for_script(manifest)}</script>
<script>{_JS}</script>
</body>
</html>
"""


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


def _run_meta(manifest: Mapping[str, Any], n_units: int, n_layers: int) -> str:
    """The run-info list: model, recipe, recipe_hash, weights, then any other top-level field (as JSON)."""
    rows = []
    order = ["model", "recipe", "recipe_hash", "weights"]
    order += [k for k in manifest if k not in order and k not in ("layers", "units")]
    for key in order:
        if key not in manifest:
            continue
        value = manifest[key]
        text = value if isinstance(value, str) else json.dumps(_finite(value), default=str)
        rows.append(f'<div><dt>{_esc(key)}</dt><dd title="{_esc(text)}">{_esc(text)}</dd></div>')
    rows.append(f"<div><dt>units</dt><dd>{n_units} in {n_layers} layer{'s' if n_layers != 1 else ''}</dd></div>")
    return f'<dl class="run-meta">{"".join(rows)}</dl>'


def _section(j: int, name: str, layer: Mapping[str, Any], units: list[tuple[int, Mapping[str, Any]]]) -> str:
    """One layer: heading (name, channel count, contact-sheet link) and its grid of thumbnails."""
    channels = layer.get("channels")
    if channels is None:
        count = f"{len(units)} shown"
    else:
        count = f"{channels} channels" + ("" if str(channels) == str(len(units)) else f" · {len(units)} shown")
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
    attrs = f'id="u{i}" data-idx="{i}" data-key="{key}" title="{key}"'
    file = unit.get("file")
    if not file:
        return f'<button type="button" class="unit missing" {attrs}><span class="noimg">no image</span>' \
               f'<span class="ch">{channel}</span></button>'
    src = _esc(url_path(file))
    return (f'<a class="unit" href="{src}" {attrs}><img src="{src}" loading="lazy" decoding="async" alt="{key}">'
            f'<span class="ch">{channel}</span></a>')


# ------------------------------------------------------------------------------------------ page assets

_CSS = """
:root { color-scheme: light; --fg: #1c2026; --muted: #5d6672; --bg: #f5f6f8; --card: #fff; --line: #d9dee4;
  --accent: #0a5fc2; --hit: #e0560b; --img-bg: #e9ecf0;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; }
* { box-sizing: border-box; }
html { scroll-padding-top: 4.5rem; }
body { margin: 0; color: var(--fg); background: var(--bg);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
body:has(dialog[open]) { overflow: hidden; }
a { color: var(--accent); }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
header.top { position: sticky; top: 0; z-index: 5; background: #fff;
  border-bottom: 1px solid var(--line); }
.bar { max-width: 1400px; margin: 0 auto; padding: .55rem 1rem; display: flex; flex-wrap: wrap;
  gap: .4rem 1.5rem; align-items: center; justify-content: space-between; }
h1 { margin: 0; font-size: 1.2rem; overflow-wrap: anywhere; }
h1 .sub { color: var(--muted); font-weight: normal; font-size: .95rem; margin-left: .4rem; }
#jump { position: relative; display: flex; gap: .4rem; flex: 0 1 26rem; }
#jump input { flex: 1; min-width: 0; font: 14px var(--mono); padding: .38rem .55rem;
  border: 1px solid #b9c1cb; border-radius: 6px; background: #fff; color: var(--fg); }
#jump input:focus { outline: 2px solid var(--accent); outline-offset: 0; border-color: var(--accent); }
button { font: inherit; color: inherit; }
#jump button, .viewer-head button { padding: .3rem .8rem; border: 1px solid #b9c1cb; border-radius: 6px;
  background: #fff; cursor: pointer; }
#jump button:hover, .viewer-head button:hover:not(:disabled) { border-color: var(--accent); color: var(--accent); }
#jump-msg { position: absolute; top: 100%; left: 0; right: 0; margin: .3rem 0 0; font-size: .85rem; }
#jump-msg:not(:empty) { padding: .35rem .6rem; color: #8a1c0a; background: #fff3ef; border: 1px solid #f2c1b3;
  border-radius: 6px; box-shadow: 0 2px 8px rgba(0, 0, 0, .08); }
main { max-width: 1400px; margin: 0 auto; padding: 0 1rem 2rem; }
.intro { padding: 1rem 0 .25rem; }
.run-meta { display: flex; flex-wrap: wrap; gap: .25rem 1.4rem; margin: 0; font-size: .88rem; }
.run-meta div { display: flex; gap: .4rem; min-width: 0; max-width: 100%; }
.run-meta dt { color: var(--muted); }
.run-meta dd { margin: 0; font-family: var(--mono); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.layer-nav { list-style: none; display: flex; flex-wrap: wrap; gap: .35rem; margin: .8rem 0 0; padding: 0; }
.layer-nav li { font-size: .85rem; }
.layer-nav a { display: inline-block; padding: .12rem .55rem; border: 1px solid var(--line); border-radius: 999px;
  background: var(--card); text-decoration: none; font-family: var(--mono); }
.layer-nav a:hover { border-color: var(--accent); }
.layer { margin-top: 1.6rem; }
.layer-head { display: flex; flex-wrap: wrap; align-items: baseline; gap: .3rem 1rem; margin-bottom: .6rem;
  padding-bottom: .35rem; border-bottom: 1px solid var(--line); }
.layer-head h2 { margin: 0; font: 600 1.1rem var(--mono); overflow-wrap: anywhere; }
.layer-head .count { color: var(--muted); font-size: .88rem; }
.layer-head .sheet { font-size: .88rem; margin-left: auto; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(112px, 1fr)); gap: .6rem; }
.unit { display: block; padding: 0; border: 1px solid var(--line); border-radius: 6px; background: var(--card);
  overflow: hidden; color: inherit; text-decoration: none; cursor: zoom-in; text-align: center; width: 100%; }
.unit:hover { border-color: var(--accent); }
.unit:focus-visible { outline: 2px solid var(--accent); outline-offset: 1px; }
.unit img, .unit .noimg { display: block; width: 100%; aspect-ratio: 1; object-fit: cover; background: var(--img-bg); }
.unit .noimg { display: grid; place-items: center; color: var(--muted); font-size: .8rem; }
.unit .ch { display: block; padding: .15rem .3rem; font: 12px var(--mono); color: var(--muted); }
.unit.hit { outline: 3px solid var(--hit); outline-offset: 2px; animation: pulse 1.2s ease-out 2; }
.unit.hit .ch { color: var(--hit); font-weight: 700; }
@keyframes pulse { 0% { box-shadow: 0 0 0 0 rgba(224, 86, 11, .55); }
  100% { box-shadow: 0 0 0 14px rgba(224, 86, 11, 0); } }
.empty { color: var(--muted); margin-top: 2rem; }
footer { max-width: 1400px; margin: 0 auto; padding: 1rem; color: var(--muted); font-size: .82rem;
  border-top: 1px solid var(--line); }
dialog#viewer { width: min(1100px, 96vw); max-height: 94vh; padding: 0; border: 0; border-radius: 10px;
  color: var(--fg); background: var(--card); box-shadow: 0 12px 48px rgba(0, 0, 0, .35); }
dialog#viewer::backdrop { background: rgba(18, 22, 28, .62); }
.viewer-head { display: flex; align-items: center; gap: .4rem; padding: .6rem .8rem;
  border-bottom: 1px solid var(--line); }
.viewer-head h2 { flex: 1; margin: 0; font: 600 1.05rem var(--mono); overflow-wrap: anywhere; }
.viewer-head button:disabled { opacity: .4; cursor: default; }
#jump button:focus-visible, .viewer-head button:focus-visible { outline: 2px solid var(--accent); outline-offset: 1px; }
.viewer-body { display: grid; grid-template-columns: minmax(0, 3fr) minmax(15rem, 2fr); gap: 1.2rem; padding: 1rem; }
.viewer-img img { display: block; width: 100%; max-height: 76vh; object-fit: contain; }
.meta { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .3rem .9rem; margin: 0;
  font-size: .9rem; }
.meta dt { color: var(--muted); }
.meta dd { margin: 0; font-family: var(--mono); overflow-wrap: anywhere; }
.links { margin: 1rem 0 0; font-size: .9rem; }
@media (max-width: 720px) {
  html { scroll-padding-top: 7.5rem; }
  .viewer-body { grid-template-columns: 1fr; }
  #jump { flex-basis: 100%; }
  .grid { grid-template-columns: repeat(auto-fill, minmax(88px, 1fr)); gap: .45rem; }
}
"""

# Builds DOM only with textContent / setAttribute: manifest strings never become markup.
_JS = """
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  let data = {};
  try {
    data = JSON.parse($("gallery-data").textContent || "{}");
  } catch (err) {
    console.error("dreamlab gallery: unreadable unit data", err);
  }
  const units = Array.isArray(data.units) ? data.units : [];
  const tiles = Array.from(document.querySelectorAll(".unit[data-idx]"));
  const tileByIdx = new Map(tiles.map((t) => [Number(t.dataset.idx), t]));
  const order = new Map(tiles.map((t, p) => [Number(t.dataset.idx), p]));
  const keys = new Map(), keysLower = new Map(), sections = new Map();
  const addKey = (k, i) => {
    if (typeof k !== "string" || !k) return;
    if (!keys.has(k)) keys.set(k, i);
    if (!keysLower.has(k.toLowerCase())) keysLower.set(k.toLowerCase(), i);
  };
  for (const t of tiles) addKey(t.dataset.key, Number(t.dataset.idx));
  units.forEach((u, i) => { if (u && tileByIdx.has(i)) addKey(u.unit, i); });
  for (const s of document.querySelectorAll("section.layer")) {
    const name = s.dataset.layer;
    if (!sections.has(name)) sections.set(name, s);
    if (!sections.has(name.toLowerCase())) sections.set(name.toLowerCase(), s);
  }

  const form = $("jump"), input = $("jump-input"), msg = $("jump-msg");
  const viewer = $("viewer"), vTitle = $("viewer-title"), vImg = $("viewer-img"), vMeta = $("viewer-meta");
  const vFile = $("viewer-file"), vLink = $("viewer-link"), vPrev = $("viewer-prev"), vNext = $("viewer-next");
  let current = -1, hit = null;

  function lookup(q) {
    if (keys.has(q)) return keys.get(q);
    const c = q.lastIndexOf(":");
    if (c > 0) {
      const ch = q.slice(c + 1).trim();
      if (/^[0-9]+$/.test(ch)) {  // tolerate "a : 007"
        const k = q.slice(0, c).trim() + ":" + String(parseInt(ch, 10));
        if (keys.has(k)) return keys.get(k);
        if (keysLower.has(k.toLowerCase())) return keysLower.get(k.toLowerCase());
      }
    }
    return keysLower.has(q.toLowerCase()) ? keysLower.get(q.toLowerCase()) : -1;
  }

  function markHit(t) {
    if (hit) hit.classList.remove("hit");
    hit = t;
    void t.offsetWidth;  // restart the pulse animation when the same tile is hit again
    t.classList.add("hit");
  }

  function reveal(i) {
    const t = tileByIdx.get(i);
    if (!t) return;
    markHit(t);
    t.scrollIntoView({ block: "center", inline: "nearest" });
  }

  function fmt(v) {
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
    if (typeof v === "string") return v;
    return JSON.stringify(v);
  }

  function openUnit(i) {
    const t = tileByIdx.get(i);
    if (!t) return;
    current = i;
    const key = t.dataset.key || "";
    const img = t.querySelector("img");
    const src = img ? img.getAttribute("src") : null;
    vTitle.textContent = key;
    vImg.setAttribute("alt", key);
    if (src) {
      vImg.setAttribute("src", src);
      vFile.setAttribute("href", src);
    } else {
      vImg.removeAttribute("src");
      vFile.removeAttribute("href");
    }
    vImg.hidden = !src;
    vFile.hidden = !src;
    vLink.setAttribute("href", "#unit=" + encodeURIComponent(key));
    const rows = [];
    const u = units[i];
    for (const [k, v] of Object.entries(u && typeof u === "object" ? u : {})) {
      const dt = document.createElement("dt");
      dt.textContent = k;
      const dd = document.createElement("dd");
      dd.textContent = fmt(v);
      if (typeof v === "number" && dd.textContent !== String(v)) dd.setAttribute("title", String(v));
      rows.push(dt, dd);
    }
    vMeta.replaceChildren(...rows);
    const p = order.get(i);
    vPrev.disabled = !(p > 0);
    vNext.disabled = !(p < tiles.length - 1);
    if (!viewer.open) viewer.showModal();
  }

  function step(d) {
    const p = order.get(current);
    if (p === undefined || !tiles[p + d]) return;
    const i = Number(tiles[p + d].dataset.idx);
    reveal(i);
    openUnit(i);
  }

  function setMsg(text) { msg.textContent = text; }

  function jump(raw) {
    const q = raw.trim();
    setMsg("");
    if (!q) return;
    const i = lookup(q);
    if (i >= 0) {
      reveal(i);
      openUnit(i);
      return;
    }
    const s = sections.get(q) || sections.get(q.toLowerCase());
    if (s) {
      s.scrollIntoView({ block: "start" });
      return;
    }
    const c = q.lastIndexOf(":");
    const layer = c > 0 ? q.slice(0, c).trim() : "";
    if (layer && (sections.has(layer) || sections.has(layer.toLowerCase()))) {
      setMsg("Layer " + layer + " has no unit " + q.slice(c + 1).trim() + " in this gallery.");
    } else {
      const example = tiles.length ? tiles[0].dataset.key : "layer:channel";
      setMsg("No unit \\u201c" + q + "\\u201d in this gallery. Type layer:channel, e.g. " + example + ".");
    }
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); jump(input.value); });
  input.addEventListener("input", () => setMsg(""));
  document.addEventListener("click", (e) => {
    const t = e.target instanceof Element ? e.target.closest(".unit[data-idx]") : null;
    if (!t || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    e.preventDefault();  // a plain click opens the large view; modified clicks keep the link behaviour
    markHit(t);
    openUnit(Number(t.dataset.idx));
  });
  $("viewer-close").addEventListener("click", () => viewer.close());
  vPrev.addEventListener("click", () => step(-1));
  vNext.addEventListener("click", () => step(1));
  viewer.addEventListener("click", (e) => { if (e.target === viewer) viewer.close(); });  // the backdrop
  viewer.addEventListener("keydown", (e) => {
    if (e.key === "ArrowLeft") { step(-1); e.preventDefault(); }
    if (e.key === "ArrowRight") { step(1); e.preventDefault(); }
  });
  document.addEventListener("keydown", (e) => {
    const typing = e.target instanceof Element && e.target.closest("input, textarea, select");
    if (e.key === "/" && !typing && !viewer.open && !e.ctrlKey && !e.metaKey && !e.altKey) {
      e.preventDefault();
      input.focus();
      input.select();
    }
  });

  function fromHash() {  // index.html#unit=<layer:channel> opens that unit
    if (!location.hash.startsWith("#unit=")) return;
    let q;
    try { q = decodeURIComponent(location.hash.slice(6)); } catch (err) { return; }
    input.value = q;
    jump(q);
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
"""
