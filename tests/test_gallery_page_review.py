"""The gallery page after review r9 (/tmp/r9/gallery.md): `/` and focusing the search box keep the page's place,
the address follows the unit on view, small renders are pixelated, the search box explains units it cannot show
(and takes logit:N), units that ended at activation 0 are marked, and ↑/↓ step through a unit's images."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from browser import Chromium, Page  # tests/browser.py
from test_gallery_page import PageParser, _png, _unit, check_clean, jump, viewer_state

from dreamlab.apps.gallery.page import DEAD_TITLE, render_index, write_index
from dreamlab.io import atomic_write_bytes

MSG = "document.getElementById('jump-msg').textContent"


def lenet_like(out: Path, *, size: int = 28, output: bool = True, channels: dict[str, range] | None = None,
               dead: tuple[str, ...] = (), diverse: str | None = None) -> dict[str, Any]:
    """A gallery shaped like lenet-digits (conv1 20, conv2 50, fc2 10 channels), showing `channels` of each."""
    shown = channels or {"conv1": range(8), "conv2": range(16), "fc2": range(10)}
    counts = {"conv1": 20, "conv2": 50, "fc2": 10}
    layers, units = [], []
    for j, (name, chans) in enumerate(shown.items()):
        layer: dict[str, Any] = {"name": name, "channels": counts[name], "steps": 256}
        if output and name == "fc2":
            layer["output"] = True
        layers.append(layer)
        for c in chans:
            file = f"{name}/{name}_{c:04d}.png"
            atomic_write_bytes(out / file, _png(100 * j + c, size), fsync=False)
            extra: dict[str, Any] = {"size": size}
            if f"{name}:{c}" in dead:
                extra["activation"] = 0.0
            if f"{name}:{c}" == diverse:
                files = [f"{name}/{name}_{c:04d}_{k}.png" for k in (1, 2, 3)]
                for k, f in enumerate(files):
                    atomic_write_bytes(out / f, _png(1000 + k, size), fsync=False)
                file = files[0]
                extra.update(files=files, activations=[1.0, 2.0, 3.0], diversity=3)
            units.append(_unit(name, c, file, **extra))
    manifest = {"model": "lenet-digits", "recipe": "lenet-digits", "weights": "default", "steps": 256,
                "size": size, "seed": 0, "layers": layers, "units": units}
    write_index(out, manifest)
    return manifest


def open_page(chromium: Chromium, out: Path, hash: str = "", width: int = 1000, height: int = 560) -> Page:
    page = chromium.new_page(width=width, height=height)
    page.goto((out / "index.html").as_uri() + hash)
    page.browser.pump(0.1)
    return page


def press(page: Page, key: str, code: str, vk: int, text: str | None = None) -> None:
    """A key browser.Page.press does not know ('/', ArrowUp, ArrowDown)."""
    down: dict[str, Any] = {"type": "keyDown", "key": key, "code": code, "windowsVirtualKeyCode": vk,
                            "nativeVirtualKeyCode": vk}
    if text:
        down["text"] = text
    page.call("Input.dispatchKeyEvent", down)
    page.call("Input.dispatchKeyEvent", {**down, "type": "keyUp", "text": ""})


@pytest.fixture(scope="module")
def lenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lenet")
    lenet_like(out, dead=("conv2:3",), diverse="conv2:5")
    return out


# 4. `/` and focusing the search box keep the page where it was

def test_slash_and_focus_do_not_scroll_the_page(chromium: Chromium, lenet: Path) -> None:
    page = open_page(chromium, lenet)
    y = page.evaluate("window.scrollTo(0, 2000), window.scrollY")
    assert y > 300  # the page is long enough to have scrolled
    press(page, "/", "Slash", 191, "/")
    page.browser.pump(0.1)
    assert page.evaluate("document.activeElement.id") == "jump-input"
    assert page.evaluate("document.getElementById('jump-input').value") == ""  # the key itself typed nothing
    assert page.evaluate("window.scrollY") == y
    y = page.evaluate("document.activeElement.blur(), window.scrollTo(0, " + str(y - 100) + "), window.scrollY")
    page.evaluate("document.getElementById('jump-input').focus()")  # focus without preventScroll: no scroll-padding
    page.browser.pump(0.1)
    assert page.evaluate("window.scrollY") == y
    # a jump to a layer still lands below the sticky header
    jump(page, "fc2")
    page.browser.pump(0.3)
    top, header = page.evaluate("""[
        document.querySelector('section.layer[data-layer="fc2"]').getBoundingClientRect().top,
                                    document.querySelector('header.top').getBoundingClientRect().bottom]""")
    assert top >= header - 1
    check_clean(page)


# 6. the address names the unit on view, and a permalink opens again after the viewer closes

def test_the_url_hash_follows_the_unit_on_view(chromium: Chromium, lenet: Path) -> None:
    page = open_page(chromium, lenet, "#unit=conv2%3A13")
    page.wait_for("document.getElementById('viewer').open")
    assert viewer_state(page)["title"] == "conv2:13"
    entries = page.evaluate("history.length")
    page.press("Escape")
    page.wait_for("location.hash === ''")  # (the dialog's close event comes after the key)
    page.evaluate("document.querySelector('.unit[data-key=\"conv2:3\"]').click()")
    page.wait_for("document.getElementById('viewer').open")
    assert page.evaluate("location.hash") == "#unit=conv2%3A3"
    page.press("ArrowRight")
    assert page.evaluate("location.hash") == "#unit=conv2%3A4"
    assert page.evaluate("history.length") == entries  # replaced, not pushed: Back leaves the page as before
    page.press("Escape")
    page.wait_for("location.hash === ''")
    page.evaluate("location.hash = '#unit=conv2%3A13'")  # the same permalink again
    page.wait_for("document.getElementById('viewer').open")
    assert viewer_state(page)["title"] == "conv2:13"
    check_clean(page)


# 7. small renders keep their pixels

def test_small_renders_are_pixelated_large_ones_smooth(chromium: Chromium, lenet: Path, tmp_path: Path) -> None:
    style = """[getComputedStyle(document.querySelector('.unit img')).imageRendering,
                getComputedStyle(document.getElementById('viewer-img')).imageRendering,
                getComputedStyle(document.querySelector('.unit img')).imageRendering]"""
    page = open_page(chromium, lenet, "#unit=conv2%3A5")
    page.wait_for("document.getElementById('viewer').open")
    assert page.evaluate(style) == ["pixelated"] * 3
    assert page.evaluate("getComputedStyle(document.querySelector('.strip img')).imageRendering") == "pixelated"
    big = tmp_path / "big"
    lenet_like(big, size=224, channels={"conv1": range(2)})
    assert open_page(chromium, big).evaluate(style) == ["auto"] * 3


# 8. what the search box says

@pytest.mark.parametrize("query, expected", [
    ("conv2:99", "Layer conv2 has no unit 99: its channels are 0-49, and this gallery shows 0-15."),
    ("conv2:20", "Layer conv2 has no unit 20 in this gallery: its channels are 0-49, and this gallery shows 0-15."),
    ("conv2:-1", "Layer conv2 has no unit \u201c-1\u201d: type a channel number, e.g. conv2:0; its channels are 0-49, "
                 "and this gallery shows 0-15."),
    ("CONV2:1.5", "Layer conv2 has no unit \u201c1.5\u201d: type a channel number, e.g. conv2:0; its channels are "
                  "0-49, and this gallery shows 0-15."),
    ("fc2:10", "Layer fc2 has no unit 10: its channels are 0-9."),
])
def test_search_names_the_layers_channels(chromium: Chromium, lenet: Path, query: str, expected: str) -> None:
    page = open_page(chromium, lenet)
    jump(page, query)
    assert page.wait_for(MSG) == expected
    assert page.evaluate("document.getElementById('viewer').open") is False
    check_clean(page)


def test_search_layer_with_empty_channel_goes_to_the_layer(chromium: Chromium, lenet: Path) -> None:
    page = open_page(chromium, lenet)
    jump(page, "fc2:")
    page.browser.pump(0.3)
    assert page.evaluate(MSG) == ""
    assert page.evaluate("window.scrollY") > 0
    assert page.evaluate("document.getElementById('viewer').open") is False


def test_search_takes_logit_for_the_output_layer(chromium: Chromium, lenet: Path, tmp_path: Path) -> None:
    page = open_page(chromium, lenet)
    jump(page, "logit:8")
    page.wait_for("document.getElementById('viewer').open")
    assert viewer_state(page)["title"] == "fc2:8"
    page.press("Escape")
    jump(page, "LOGIT : 12")
    assert page.wait_for(MSG) == "Layer fc2 has no unit 12: its channels are 0-9."
    check_clean(page)

    other = tmp_path / "conv"  # no layer of the gallery gives the model's output
    lenet_like(other, output=False, channels={"conv1": range(4), "conv2": range(4)})
    page = open_page(chromium, other)
    jump(page, "logit:8")
    assert page.wait_for(MSG) == ("\u201clogit:8\u201d names the model's output, which no layer of this gallery gives "
                                  "(its layers: conv1, conv2); type layer:channel, e.g. conv1:0.")
    check_clean(page)


# 9. units that ended at activation 0

def test_units_that_ended_at_activation_0_are_marked(lenet: Path) -> None:
    manifest = json.loads(json.dumps(lenet_like(lenet / "again", dead=("conv2:3",), diverse="conv2:5")))
    manifest["units"].append(_unit("fc2", 10, "fc2/x.png", activation=1.0, activations=[0.0, 2.0],
                                   files=["fc2/x.png", "fc2/y.png"]))  # one image of two was on: not dead
    parser = PageParser()
    parser.feed(render_index(manifest))
    tiles = {attrs["data-key"]: attrs for tag, attrs in parser.tags if tag == "a" and attrs.get("data-key")}
    assert tiles["conv2:3"]["class"] == "unit dead"
    assert tiles["conv2:3"]["title"] == f"conv2:3 {DEAD_TITLE}"
    assert all(attrs["class"] == "unit" for key, attrs in tiles.items() if key != "conv2:3")
    badges = [attrs for tag, attrs in parser.tags if tag == "span" and attrs.get("class") == "badge"]
    assert len(badges) == 1


def test_a_unit_that_was_on_during_the_run_is_not_marked_though_it_ended_at_0(lenet: Path) -> None:
    manifest = json.loads(json.dumps(lenet_like(lenet / "again", dead=("conv2:3",), diverse="conv2:5")))
    units = {unit["unit"]: unit for unit in manifest["units"]}
    units["conv2:3"]["never_on"] = False  # the gallery's record: on at some step, though it ended at 0
    units["conv2:4"].update(activation=0.0, never_on=True)
    parser = PageParser()
    parser.feed(render_index(manifest))
    dead = [attrs["data-key"] for tag, attrs in parser.tags if tag == "a" and attrs.get("class") == "unit dead"]
    assert dead == ["conv2:4"]


def test_dead_tile_is_dimmed_in_the_browser(chromium: Chromium, lenet: Path) -> None:
    page = open_page(chromium, lenet)
    opacity = "getComputedStyle(document.querySelector('.unit[data-key=\"{}\"] img')).opacity"
    assert page.evaluate(opacity.format("conv2:3")) == "0.45"
    assert page.evaluate(opacity.format("conv2:2")) == "1"
    assert page.evaluate("document.querySelector('.unit[data-key=\"conv2:3\"] .badge').textContent") == "0"


# 13. ↑ / ↓ step through a unit's --diversity images, ← / → through units

def test_up_and_down_step_through_a_units_images(chromium: Chromium, lenet: Path) -> None:
    page = open_page(chromium, lenet, "#unit=conv2%3A5")
    page.wait_for("document.getElementById('viewer').open")
    pressed = "Array.from(document.querySelectorAll('#viewer-strip button'), (b) => b.getAttribute('aria-pressed'))"
    image = "document.getElementById('viewer-img').getAttribute('src')"
    assert page.evaluate(pressed) == ["true", "false", "false"]
    press(page, "ArrowDown", "ArrowDown", 40)
    assert page.evaluate(pressed) == ["false", "true", "false"]
    assert page.evaluate(image) == "conv2/conv2_0005_2.png"
    state = viewer_state(page)
    assert state["dd"][state["dt"].index("image")] == "2 of 3"
    press(page, "ArrowDown", "ArrowDown", 40)
    press(page, "ArrowDown", "ArrowDown", 40)  # past the last: stays
    assert page.evaluate(pressed) == ["false", "false", "true"]
    press(page, "ArrowUp", "ArrowUp", 38)
    assert page.evaluate(image) == "conv2/conv2_0005_2.png"
    assert viewer_state(page)["title"] == "conv2:5"  # still the same unit
    page.press("ArrowRight")
    assert viewer_state(page)["title"] == "conv2:6"
    assert page.evaluate("document.getElementById('viewer-strip').hidden") is True
    check_clean(page)
