"""The gallery index page: escaping and URL quoting (checked on the parsed HTML), atomic writes, and the
page's behaviour in headless Chromium (thumbnails load, search jumps and opens units, unknown units)."""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import stat
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np
import pytest
from browser import Chromium, Page, load_all_thumbnails  # tests/browser.py: pytest puts tests/ (no __init__) on sys.path
from PIL import Image

from dreamlab import io as dreamlab_io
from dreamlab.apps.gallery.page import json_for_script, render_index, write_index
from dreamlab.io import atomic_write_bytes, atomic_write_text

ARTIFACTS = Path(__file__).parent / "artifacts"
SCREENSHOT_COPY = Path("/tmp/gallery_page_screenshot.png")

HOSTILE_LAYER = "</script><script>alert(1)</script>"
ODD_LAYER = "q\"u'o & <b>amp</b> #frag ?q=1 %41 ünï©ødé 🎨"
ATTR_LAYER = '" onmouseover="alert(2)'
PAGE_TAGS = {"html", "head", "meta", "title", "link", "style", "body", "header", "div", "h1", "span", "form",
             "label", "input", "button", "p", "main", "section", "dl", "dt", "dd", "nav", "ul", "li", "a", "h2",
             "img", "footer", "dialog", "script", "figure", "figcaption", "code"}


def _unit(layer: str, channel: int, file: str | None, **extra: Any) -> dict[str, Any]:
    unit = {"unit": f"{layer}:{channel}", "layer": layer, "channel": channel, "objective": f"{layer}:{channel}",
            "activation": 12.34 + channel, "seed": 0, "steps": 512, "recipe": "googlenet",
            "recipe_hash": "sha256:" + "ab" * 32}
    if file is not None:
        unit["file"] = file
    unit.update(extra)
    return unit


def hostile_manifest() -> dict[str, Any]:
    """Names, paths and metadata built to break out of every context the page puts them in."""
    layers, units = [], []
    for name in (HOSTILE_LAYER, ODD_LAYER, ATTR_LAYER):
        layers.append({"name": name, "channels": 2, "sheet": f"{name}/contact_sheet.png"})
        for c in range(2):
            units.append(_unit(name, c, f"{name}/{name}_{c:04d}.png", note="<!-- & </SCRIPT > <![CDATA["))
    units.append(_unit("extra", 0, "javascript:alert(3)"))
    return {"model": "<img src=x onerror=alert(4)>", "recipe": "googlenet", "recipe_hash": "sha256:" + "cd" * 32,
            "weights": "IMAGENET1K_V1", "layers": layers, "units": units}


class PageParser(HTMLParser):
    """Collects start tags, script elements (attrs, content), comments and text chunks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], list[str]]] = []
        self.comments: list[str] = []
        self.text: list[str] = []
        self._script: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = []
            self.scripts.append((dict(attrs), self._script))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = None

    def handle_data(self, data: str) -> None:
        (self._script if self._script is not None else self.text).append(data)

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def parse(html_text: str) -> PageParser:
    parser = PageParser()
    parser.feed(html_text)
    parser.close()
    return parser


def data_block(parser: PageParser) -> str:
    (block,) = ["".join(body) for attrs, body in parser.scripts if attrs.get("type") == "application/json"]
    return block


# ------------------------------------------------------------------------------------------- HTML tests


def test_hostile_names_cannot_inject_markup_or_script() -> None:
    manifest = hostile_manifest()
    page = render_index(manifest)
    parsed = parse(page)

    assert [attrs for attrs, _ in parsed.scripts] == [{"type": "application/json", "id": "gallery-data"}, {}]
    code = "".join(parsed.scripts[1][1])
    assert "alert" not in code and "innerHTML" not in code
    assert {tag for tag, _ in parsed.tags} <= PAGE_TAGS  # no <b>, no second <script>, no stray <img>
    assert not [(tag, a) for tag, attrs in parsed.tags for a in attrs if a.startswith("on")]
    assert parsed.comments == []
    assert HOSTILE_LAYER not in page and "<b>" not in page and "<!--" not in page

    text = parsed.text
    for name in (HOSTILE_LAYER, ODD_LAYER, ATTR_LAYER):
        assert name in text  # each heading's text is exactly the layer name, unescaped by the parser
    assert manifest["model"] in text  # the run-meta value


def test_json_block_parses_back_to_the_manifest() -> None:
    manifest = hostile_manifest()
    block = data_block(parse(render_index(manifest)))
    assert "<" not in block and ">" not in block and "&" not in block
    assert json.loads(block) == manifest


def test_file_paths_are_url_quoted() -> None:
    manifest = hostile_manifest()
    parsed = parse(render_index(manifest))
    tiles = {attrs["data-idx"]: attrs for tag, attrs in parsed.tags if tag == "a" and "data-idx" in attrs}
    imgs = [attrs["src"] or "" for tag, attrs in parsed.tags if tag == "img" and attrs.get("src")]
    sheets = [attrs["href"] or "" for tag, attrs in parsed.tags if tag == "a" and attrs.get("class") == "sheet"]

    assert len(tiles) == len(manifest["units"])
    for i, unit in enumerate(manifest["units"]):
        expected = quote(unit["file"], safe="/")
        assert tiles[str(i)]["href"] == expected
        assert tiles[str(i)]["data-key"] == f"{unit['layer']}:{unit['channel']}"
    assert imgs == [quote(u["file"], safe="/") for u in manifest["units"]]
    assert sheets == [quote(layer["sheet"], safe="/") for layer in manifest["layers"]]
    for url in imgs + sheets:
        assert not set(url) & set(" \"'<>&#?:"), url  # '%41' stays literal too: '%' itself is quoted
        assert not urlsplit(url).scheme  # 'javascript:alert(3)' is a relative path, not a scheme
    assert "%2541" in imgs[2]


def test_page_has_no_external_assets() -> None:
    page = render_index(hostile_manifest())
    parsed = parse(page)
    for tag, attrs in parsed.tags:
        for name in ("src", "href"):
            url = attrs.get(name)
            if url is None:
                continue
            parts = urlsplit(url)
            assert url.startswith("data:") or (not parts.scheme and not parts.netloc), (tag, url)
        assert not (tag == "link" and attrs.get("rel") == "stylesheet")
        assert not (tag == "script" and "src" in attrs)
    for needle in ("http:", "https:", "@import", "url(", "@font-face", "innerHTML", "outerHTML",
                   "insertAdjacentHTML", "document.write", "eval("):
        assert needle not in page, needle
    # thumbnails, the large view and its dataset examples
    assert page.count("<img") == len(hostile_manifest()["units"]) + 2
    assert all(attrs.get("loading") == "lazy" for tag, attrs in parsed.tags if tag == "img" and attrs.get("src"))


def test_json_for_script_escapes_and_handles_non_finite_numbers() -> None:
    value = {"s": "</script><!-- & > \u2028 é", "nan": math.nan, "inf": [math.inf, -math.inf], "n": 1.5}
    text = json_for_script(value)
    assert not set(text) & set("<>&") and text.isascii()

    def no_constants(name: str) -> None:
        raise AssertionError(f"bare {name} is not JSON")

    back = json.loads(text, parse_constant=no_constants)
    assert back == {"s": value["s"], "nan": "NaN", "inf": ["Infinity", "-Infinity"], "n": 1.5}


def test_sections_for_unlisted_layers_missing_files_and_empty_gallery() -> None:
    manifest = {"model": "m", "layers": [{"name": "a", "channels": 4}],
                "units": [_unit("a", 0, "a/a_0000.png"), _unit("b", 3, None)]}
    parsed = parse(render_index(manifest))
    sections = [attrs["data-layer"] for tag, attrs in parsed.tags if tag == "section" and "data-layer" in attrs]
    assert sections == ["a", "b"]
    assert "4 channels · 1 shown" in parsed.text
    missing = [attrs for tag, attrs in parsed.tags if tag == "button" and attrs.get("data-key") == "b:3"]
    assert missing and "missing" in (missing[0]["class"] or "")

    # Tile ids index manifest["units"] as the JSON block has it, junk entries included.
    parsed = parse(render_index({"model": "m", "units": ["junk", _unit("a", 1, "a.png")]}))
    assert [attrs["data-idx"] for tag, attrs in parsed.tags if "data-idx" in attrs] == ["1"]

    empty = parse(render_index({"model": "m", "layers": [], "units": []}))
    assert "This gallery is empty." in empty.text
    assert json.loads(data_block(empty)) == {"model": "m", "layers": [], "units": []}


def test_layer_heading_counts_one_channel_in_the_singular() -> None:
    manifest = {"model": "m", "layers": [{"name": "one", "channels": 1}, {"name": "two", "channels": 2}],
                "units": [_unit("one", 0, "one/one_0000.png"), _unit("two", 0, "two/two_0000.png")]}
    counts = [text for text in parse(render_index(manifest)).text if "channel" in text]
    assert counts == ["1 channel", "2 channels · 1 shown"]


def test_write_index_is_atomic_and_replaces(tmp_path: Path) -> None:
    manifest = hostile_manifest()
    out = tmp_path / "gallery"
    path = write_index(out, manifest)
    assert path == out / "index.html"
    first = path.read_text(encoding="utf-8")
    assert first == render_index(manifest)

    manifest["model"] = "second"
    write_index(out, manifest)
    assert "second" in path.read_text(encoding="utf-8")
    assert sorted(p.name for p in out.iterdir()) == ["index.html"]  # no temp file left behind

    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "sub" / "dir" / "manifest.json"
    atomic_write_text(target, "old")  # creates the parent folders
    assert target.read_text() == "old"

    def fail(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(dreamlab_io.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["manifest.json"]


# ---------------------------------------------------------------------------------------- browser tests

ODD_BROWSER_LAYER = 'block 1 & "x" #2 ?q=50% ü'
SCRIPT_LAYER = "</script><b>bold</b>"


def _png(seed: int, size: int = 48) -> bytes:
    """A small colourful pattern that looks a little like a feature visualization."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size * 2 * np.pi
    freq, phase = rng.uniform(1, 4, (3, 2)), rng.uniform(0, 2 * np.pi, 3)
    rgb = np.stack([np.sin(freq[k, 0] * x + phase[k]) * np.cos(freq[k, 1] * y - phase[k]) for k in range(3)], -1)
    buf = io.BytesIO()
    Image.fromarray(((rgb + 1) * 127.5).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def make_gallery(out: Path) -> dict[str, Any]:
    """Three layers of tiny PNGs, two with odd names (one as a folder name), plus index.html."""
    layers, units = [], []
    for j, (name, folder, n) in enumerate([("mixed3a", "mixed3a", 16), (ODD_BROWSER_LAYER, ODD_BROWSER_LAYER, 6),
                                           (SCRIPT_LAYER, "script_layer", 2)]):
        sheet = Image.new("RGB", (48 * n, 48))
        for c in range(n):
            png = _png(100 * j + c)
            file = f"{folder}/{folder}_{c:04d}.png"
            atomic_write_bytes(out / file, png, fsync=False)
            sheet.paste(Image.open(io.BytesIO(png)), (48 * c, 0))
            units.append(_unit(name, c, file, activation=round(1.5 + c / 7, 9)))
        buf = io.BytesIO()
        sheet.save(buf, "PNG")
        atomic_write_bytes(out / folder / "contact_sheet.png", buf.getvalue(), fsync=False)
        layers.append({"name": name, "channels": n, "sheet": f"{folder}/contact_sheet.png"})
    manifest = {"model": "googlenet", "recipe": "googlenet", "recipe_hash": "sha256:" + "ab" * 32,
                "weights": "IMAGENET1K_V1", "layers": layers, "units": units}
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1))
    write_index(out, manifest)
    return manifest




@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("gallery")
    return out / "index.html", make_gallery(out)


def open_gallery(chromium: Chromium, gallery: tuple[Path, dict[str, Any]], width: int = 1000,
                 height: int = 560) -> Page:
    page = chromium.new_page(width=width, height=height)
    page.goto(gallery[0].as_uri())
    return page


def check_clean(page: Page) -> None:
    """No console errors, no JS alert/confirm, and nothing requested outside file:// (and data:)."""
    page.browser.pump(0.05)
    assert page.console_errors() == []
    assert page.events("Page.javascriptDialogOpening") == []
    urls = page.requested_urls()
    assert urls and all(u.startswith(("file://", "data:")) for u in urls), urls


def tile_js(key: str) -> str:
    return f"Array.from(document.querySelectorAll('.unit')).find((t) => t.dataset.key === {json.dumps(key)})"


def viewer_state(page: Page) -> dict[str, Any]:
    return page.evaluate("""(() => {
        const v = document.getElementById('viewer');
        return {open: v.open, title: document.getElementById('viewer-title').textContent,
                dt: Array.from(v.querySelectorAll('dt'), (e) => e.textContent),
                dd: Array.from(v.querySelectorAll('dd'), (e) => e.textContent)};
    })()""")


def jump(page: Page, text: str) -> None:
    """Type into the search box like a user (after clearing it) and press Enter."""
    page.evaluate("(() => { const i = document.getElementById('jump-input'); i.value = ''; i.focus(); })()")
    page.type_text(text)
    page.press("Enter")


def test_browser_page_loads_all_thumbnails_without_errors(chromium: Chromium,
                                                          gallery: tuple[Path, dict[str, Any]]) -> None:
    page = open_gallery(chromium, gallery)
    manifest = gallery[1]
    assert page.evaluate("document.title") == "googlenet · dreamlab gallery"
    assert page.evaluate("document.scripts.length") == 2
    assert page.evaluate("document.querySelectorAll('b').length") == 0
    headings = page.evaluate("Array.from(document.querySelectorAll('section.layer h2'), (h) => h.textContent)")
    assert headings == [layer["name"] for layer in manifest["layers"]]

    loaded = load_all_thumbnails(page)
    assert len(loaded) == len(manifest["units"])
    for (lazy, src, width), unit in zip(loaded, manifest["units"], strict=True):
        assert lazy == "lazy" and src == quote(unit["file"], safe="/")
        assert width == 48, f"thumbnail {unit['file']!r} did not load"

    sheets = page.evaluate("""Promise.all(Array.from(document.querySelectorAll('a.sheet'), (a) =>
        new Promise((resolve) => { const i = new Image(); i.onload = () => resolve(i.naturalWidth);
                                   i.onerror = () => resolve(0); i.src = a.href; })))""")
    assert sheets == [48 * 16, 48 * 6, 48 * 2]

    ARTIFACTS.mkdir(exist_ok=True)
    shot = page.screenshot(ARTIFACTS / "gallery_page.png", full_page=True)
    shutil.copyfile(shot, SCREENSHOT_COPY)
    check_clean(page)


def test_browser_search_jumps_to_unit_and_opens_it(chromium: Chromium,
                                                   gallery: tuple[Path, dict[str, Any]]) -> None:
    page = open_gallery(chromium, gallery)
    unit = next(u for u in gallery[1]["units"] if u["unit"] == f"{ODD_BROWSER_LAYER}:5")
    in_view = f"""(() => {{ const r = {tile_js(unit['unit'])}.getBoundingClientRect();
                    return r.top >= 0 && r.bottom <= innerHeight; }})()"""
    assert page.evaluate(in_view) is False  # below the fold before the jump

    jump(page, unit["unit"])
    page.wait_for("document.getElementById('viewer').open")
    assert page.evaluate(in_view) is True
    assert page.evaluate(f"{tile_js(unit['unit'])}.classList.contains('hit')") is True
    state = viewer_state(page)
    assert state["title"] == unit["unit"]
    assert state["dt"] == list(unit)
    for key, text in zip(unit, state["dd"], strict=True):
        value = unit[key]
        if isinstance(value, float):
            assert float(text) == pytest.approx(value, rel=1e-5)
        else:
            assert text == str(value)
    assert page.wait_for("(() => { const i = document.getElementById('viewer-img');"
                         " return i.complete && i.naturalWidth; })()") == 48

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(ARTIFACTS / "gallery_page_viewer.png")
    shutil.copyfile(ARTIFACTS / "gallery_page_viewer.png", SCREENSHOT_COPY.with_name("gallery_page_viewer.png"))

    page.press("Escape")
    page.wait_for("!document.getElementById('viewer').open")
    jump(page, " MIXED3A : 007 ")  # case, spaces and leading zeros are forgiven
    page.wait_for("document.getElementById('viewer').open")
    assert viewer_state(page)["title"] == "mixed3a:7"
    page.press("Escape")

    key = f"{SCRIPT_LAYER}:1"  # the permalink form: index.html#unit=<key>
    page.evaluate(f"location.hash = '#unit=' + encodeURIComponent({json.dumps(key)})")
    page.wait_for(f"document.getElementById('viewer-title').textContent === {json.dumps(key)}")
    check_clean(page)


def test_browser_unknown_unit_shows_inline_message(chromium: Chromium,
                                                   gallery: tuple[Path, dict[str, Any]]) -> None:
    page = open_gallery(chromium, gallery)
    msg = "document.getElementById('jump-msg').textContent"
    jump(page, "nosuchlayer:3")
    text = page.wait_for(msg)
    assert "nosuchlayer:3" in text and "mixed3a:0" in text  # names the input and shows an example
    assert page.evaluate("document.getElementById('viewer').open") is False
    assert page.evaluate("getComputedStyle(document.getElementById('jump-msg')).display") != "none"
    page.screenshot(ARTIFACTS / "gallery_page_unknown.png")

    jump(page, "mixed3a:999")
    assert "has no unit 999" in page.wait_for(f"{msg}.includes('999') && {msg}")
    page.type_text("x")  # editing the query clears the message
    assert page.evaluate(msg) == ""
    check_clean(page)


def test_browser_click_opens_unit_and_arrows_step(chromium: Chromium,
                                                  gallery: tuple[Path, dict[str, Any]]) -> None:
    page = open_gallery(chromium, gallery)
    x, y = page.evaluate(f"""(() => {{ const r = {tile_js('mixed3a:2')}.getBoundingClientRect();
                              return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
    page.click(x, y)
    page.wait_for("document.getElementById('viewer').open")
    assert viewer_state(page)["title"] == "mixed3a:2"
    # the link's default was prevented; the address names the unit on view (finding r9 #6)
    assert page.evaluate("location.href.split('#')[0]").endswith("index.html")
    assert page.evaluate("location.hash") == "#unit=mixed3a%3A2"
    page.press("ArrowRight")
    assert viewer_state(page)["title"] == "mixed3a:3"
    page.press("ArrowLeft")
    page.press("ArrowLeft")
    assert viewer_state(page)["title"] == "mixed3a:1"
    assert page.evaluate("location.hash") == "#unit=mixed3a%3A1"
    page.press("Escape")
    assert page.evaluate("document.getElementById('viewer').open") is False
    assert page.wait_for("location.hash === ''") is True
    check_clean(page)


def test_browser_narrow_screen_has_no_horizontal_overflow(chromium: Chromium,
                                                          gallery: tuple[Path, dict[str, Any]]) -> None:
    page = open_gallery(chromium, gallery, width=390, height=800)
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth") is True
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(ARTIFACTS / "gallery_page_narrow.png")
    check_clean(page)


def test_browser_large_view_shows_a_units_dataset_examples(chromium: Chromium, tmp_path: Path) -> None:
    """gallery --examples: a unit with an examples strip shows it under its image; one without hides the figure."""
    for name, seed in (("conv/conv_0000.png", 1), ("conv/conv_0001.png", 2), ("conv/conv_0000_examples.png", 3)):
        atomic_write_bytes(tmp_path / name, _png(seed), fsync=False)
    units = [_unit("conv", 0, "conv/conv_0000.png", examples="conv/conv_0000_examples.png",
                   example_images=["a.jpg", "b.jpg"], example_scores=[3.5, 1.25]),
             _unit("conv", 1, "conv/conv_0001.png")]
    write_index(tmp_path, {"model": "m", "layers": [{"name": "conv", "channels": 2}], "units": units})
    page = chromium.new_page(width=1000, height=700)
    page.goto((tmp_path / "index.html").as_uri() + "#unit=conv:0")
    page.browser.pump(0.2)
    shown = page.evaluate("""new Promise((resolve) => { const f = document.getElementById('viewer-examples');
        const i = document.getElementById('viewer-examples-img');
        const done = () => resolve({hidden: f.hidden, src: i.getAttribute('src'), width: i.naturalWidth});
        if (i.complete) done(); else { i.onload = done; i.onerror = done; } })""")
    assert shown == {"hidden": False, "src": "conv/conv_0000_examples.png", "width": 48}
    state = viewer_state(page)
    assert state["dd"][state["dt"].index("example_scores")] == "3.5, 1.25"
    page.press("ArrowRight")
    page.browser.pump(0.1)
    assert viewer_state(page)["title"] == "conv:1"
    assert page.evaluate("document.getElementById('viewer-examples').hidden") is True
    assert page.evaluate("document.getElementById('viewer-examples-img').getAttribute('src')") is None
    check_clean(page)
