"""Quality measures of the render engine (GitHub issue #3), and the `dreamlab quality` command.

- transfer: render logit:0-9 of lenet-digits with its recipe; an independently trained judge must classify
  render k as digit k.
- dataset ("beats the dataset"): each conv2 channel and class logit must reach at least the best activation
  over the whole digits dataset.
- planted: on models whose channels are known colour gratings (dreamlab.apps.quality.planted), every channel's render must
  have the planted orientation and correlate with the best-matching tiling of the planted filter.

Each measure returns a `Measure` with its figure, its goal and per-item details; the command prints them as a
table and exits 1 when a goal is missed.

>>> m = measure_dataset(QualitySettings(steps=64, conv2_units=range(4), logit_units=range(2)))  # doctest: +SKIP
>>> m.figure_text, m.goal_text, m.passed                                                        # doctest: +SKIP
('6/6 units (100%)', '>= 95% of units with ratio >= 1.0', True)
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from dreamlab.apps.quality.planted import dominant_orientation, orientation_error, planted_model, tiling_correlation
from dreamlab.errors import DreamlabError, unknown
from dreamlab.models.loading import load_model
from dreamlab.models.zoo.digits import DIGITS_MEAN, DIGITS_STD, digits_judge, load_digits_split
from dreamlab.optvis.capture import Capture
from dreamlab.optvis.engine import render
from dreamlab.optvis.objectives import channel, logit
from dreamlab.optvis.params import PARAMS
from dreamlab.optvis.transforms import PRESETS

DIGITS_MODEL = "lenet-digits"
MEASURES = ("transfer", "dataset", "planted")

# the goals of issue #3
TRANSFER_GOAL = 0.9  # fraction of logit renders the judge classifies as their digit (9/10)
DATASET_GOAL = 0.95  # fraction of units whose render reaches the dataset's best activation
ORIENTATION_GOAL = 10.0  # degrees
CORRELATION_GOAL = 0.8


@dataclass(frozen=True)
class QualitySettings:
    """What the measures render. `None` steps take the recipes' (256 for lenet-digits, 1024 for planted)."""

    steps: int | None = None  # digits renders
    planted_steps: int | None = None
    seed: int = 0
    device: str = "cpu"
    logit_units: Sequence[int] = range(10)
    conv2_units: Sequence[int] = range(50)
    planted_layers: Sequence[int] = (1, 2)
    planted_params: Sequence[str] = tuple(PARAMS)
    planted_presets: Sequence[str] = tuple(PRESETS)
    param_options: dict | None = None  # passed to every render (e.g. to show that a broken parameterization fails)
    optimizer: str | None = None  # None: the recipes' ('channel-adam'); 'adam' shows lucid's optimizer


# QualitySettings.param_options keys (the parameterization's own names) -> the render settings they set
_PARAM_SETTINGS = {"decay_power": "fourier_decay", "sd": "init_sd", "start_level": "start_level",
                   "decorrelate": "decorrelate", "color_matrix": "color_matrix"}


def _param_settings(settings: QualitySettings) -> dict[str, Any]:
    options = settings.param_options or {}
    for key in options:
        if key not in _PARAM_SETTINGS:
            raise unknown("param option", key, _PARAM_SETTINGS)
    return {_PARAM_SETTINGS[key]: value for key, value in options.items()}


# the small version that the test suite runs (seconds, not minutes)
FAST = QualitySettings(steps=None, planted_steps=512, logit_units=range(10), conv2_units=range(0, 50, 5),
                       planted_layers=(1,), planted_params=("pixel",), planted_presets=("none", "jitter"))


@dataclass
class Measure:
    """One measure's outcome: `figure` (a number) compared with `goal`; `items` per unit or per cell."""

    name: str
    title: str
    figure: float
    figure_text: str
    goal: float
    goal_text: str
    passed: bool
    items: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- digits ----------------------------------------------------------------------------------------------------

def digits_data() -> Tensor:
    """Every image of scikit-learn's digits (train and held-out), [1797, 1, 28, 28] in [0, 1]."""
    try:
        x_train, _, x_test, _ = load_digits_split()
    except ImportError:
        raise DreamlabError("the digits measures need scikit-learn: pip install 'dreamlab[digits]'") from None
    return torch.cat([x_train, x_test])


def unit_scores(model: torch.nn.Module, images: Tensor, layer: str, units: Sequence[int],
                mean: float, std: float, per_sample: bool) -> Tensor:
    """The objectives' values without gradient: a channel's spatial mean, or a logit (layer 'logit').

    `per_sample`: image i is scored on units[i] only ([N]); otherwise every image on every unit ([N, U]).
    """
    device = next(model.parameters()).device
    with torch.no_grad(), Capture(model, [layer], stop_early=False) as cap:
        act = cap.run((images.to(device) - mean) / std)[layer].float().cpu()
    act = act.flatten(2).mean(2) if act.dim() > 2 else act
    index = torch.as_tensor(list(units))
    if per_sample:
        return act[torch.arange(len(index)), index]
    return act[:, index]


def _digits_render(settings: QualitySettings, layer: str, units: Sequence[int]):
    """(loaded lenet-digits, RenderResult) of one batched render of `units` of `layer` ('logit' or a layer)."""
    loaded = load_model(DIGITS_MODEL)
    objective = logit(list(units)) if layer == "logit" else channel(layer, list(units))
    result = render(loaded, objective, steps=settings.steps, seed=settings.seed, device=settings.device,
                    optimizer=settings.optimizer, **_param_settings(settings))
    return loaded, result


def measure_transfer(settings: QualitySettings = QualitySettings(), logits=None) -> Measure:
    """Render logit:k of lenet-digits and count the renders the independent judge classifies as k.

    `logits` may be a finished (loaded model, RenderResult) of the logit units, to share one render with
    measure_dataset.
    """
    start = time.perf_counter()
    units = list(settings.logit_units)
    _, result = logits or _digits_render(settings, "logit", units)
    with torch.no_grad():
        probs = digits_judge()((result.images - DIGITS_MEAN) / DIGITS_STD).softmax(1)
    items, hits = [], 0
    for i, unit in enumerate(units):
        said = int(probs[i].argmax())
        hits += said == unit
        items.append({"unit": f"logit:{unit}", "judge": said, "p_judge": round(float(probs[i, said]), 4),
                      "p_target": round(float(probs[i, unit]), 4), "passed": said == unit})
    need = math.ceil(TRANSFER_GOAL * len(units) - 1e-9)
    missed = [f"logit:{it['unit'].split(':')[1]} -> {it['judge']} (p={it['p_judge']:.2f})"
              for it in items if not it["passed"]]
    return Measure(
        name="transfer", title="Transfer to an independent judge", figure=hits / len(units),
        figure_text=f"{hits}/{len(units)} classified as their digit", goal=TRANSFER_GOAL,
        goal_text=f">= {need}/{len(units)}", passed=hits >= need, items=items,
        notes=[f"misclassified: {', '.join(missed)}"] if missed else [],
        seconds=time.perf_counter() - start)


def measure_dataset(settings: QualitySettings = QualitySettings(), logits=None) -> Measure:
    """For every conv2 channel and class logit: the rendered image's activation against the best over the dataset.

    The ratio is taken from the dataset's mean activation, (rendered - mean) / (best - mean): conv2 is read
    before its ReLU and its spatial mean is negative on most digits (black background), so a plain
    rendered / best would flip sign. Ratio >= 1 is exactly "the render reaches the dataset's best".
    """
    start = time.perf_counter()
    data = digits_data()
    items: list[dict[str, Any]] = []
    jobs = [("conv2", list(settings.conv2_units)), ("logit", list(settings.logit_units))]
    for layer, units in jobs:
        if not units:
            continue
        if layer == "logit" and logits is not None:
            loaded, result = logits
        else:
            loaded, result = _digits_render(settings, layer, units)
        model = loaded.model
        dataset = unit_scores(model, data, layer, units, DIGITS_MEAN, DIGITS_STD, per_sample=False)
        rendered = unit_scores(model, result.images, layer, units, DIGITS_MEAN, DIGITS_STD, per_sample=True)
        best, typical = dataset.max(0).values, dataset.mean(0)
        ratio = (rendered - typical) / (best - typical)
        for i, unit in enumerate(units):
            items.append({"unit": f"{layer}:{unit}", "rendered": round(float(rendered[i]), 4),
                          "dataset_best": round(float(best[i]), 4), "dataset_mean": round(float(typical[i]), 4),
                          "ratio": round(float(ratio[i]), 3), "passed": bool(ratio[i] >= 1.0)})
    n = len(items)
    if n == 0:
        raise DreamlabError("the dataset measure needs at least one unit")
    hits = sum(it["passed"] for it in items)
    ratios = sorted(it["ratio"] for it in items)
    notes = [f"ratio min {ratios[0]:.2f}, median {ratios[n // 2]:.2f}"]
    notes += [f"{it['unit']} reached ratio {it['ratio']:.2f}" for it in items if not it["passed"]]
    return Measure(
        name="dataset", title="Beats the dataset", figure=hits / n,
        figure_text=f"{hits}/{n} units ({100 * hits / n:.0f}%) reach the dataset's best",
        goal=DATASET_GOAL, goal_text=f">= {100 * DATASET_GOAL:.0f}% of units", passed=hits / n >= DATASET_GOAL,
        items=items, notes=notes, seconds=time.perf_counter() - start)


# --- planted filters ---------------------------------------------------------------------------------------------

def planted_cell(layers: int, param: str, preset: str, settings: QualitySettings = QualitySettings()) -> dict:
    """Render every channel of one planted model with one parameterization and transform preset; check each."""
    planted = planted_model(layers=layers)
    result = render(planted.model, channel(planted.layer, range(planted.units)), recipe=planted.recipe,
                    param=param, transforms=preset, steps=settings.planted_steps, seed=settings.seed,
                    device=settings.device, optimizer=settings.optimizer, **_param_settings(settings))
    channels = []
    for k in range(planted.units):
        error = orientation_error(dominant_orientation(result.images[k]), planted.orientations[k])
        corr, _ = tiling_correlation(result.images[k], planted.kernels[k])
        channels.append({"channel": k, "orientation": planted.orientations[k], "hue": planted.hues[k],
                         "orientation_error": round(error, 2), "correlation": round(corr, 3),
                         "passed": error <= ORIENTATION_GOAL and corr >= CORRELATION_GOAL})
    recovered = sum(c["passed"] for c in channels)
    return {"model": f"{layers}-layer", "param": param, "transforms": preset, "recovered": recovered,
            "channels": len(channels), "min_correlation": min(c["correlation"] for c in channels),
            "max_orientation_error": max(c["orientation_error"] for c in channels),
            "passed": recovered == len(channels), "per_channel": channels}


def measure_planted(settings: QualitySettings = QualitySettings()) -> Measure:
    """Every (model, parameterization, preset) cell must recover all of its planted channels."""
    start = time.perf_counter()
    cells = [planted_cell(layers, param, preset, settings) for layers in settings.planted_layers
             for param in settings.planted_params for preset in settings.planted_presets]
    if not cells:
        raise DreamlabError("the planted measure needs at least one model, parameterization and preset")
    passed = sum(c["passed"] for c in cells)
    notes = []
    for param in settings.planted_params:
        mine = [c for c in cells if c["param"] == param]
        notes.append(f"{param}: {sum(c['passed'] for c in mine)}/{len(mine)} cells, correlation "
                     f"{min(c['min_correlation'] for c in mine):.2f}..{max(c['min_correlation'] for c in mine):.2f}"
                     f" (worst channel per cell)")
    return Measure(
        name="planted", title="Planted filters", figure=passed / len(cells),
        figure_text=f"{passed}/{len(cells)} cells recover every channel",
        goal=1.0, goal_text=f"{len(cells)}/{len(cells)} (orientation <= {ORIENTATION_GOAL:g} deg, "
                            f"correlation >= {CORRELATION_GOAL:g})",
        passed=passed == len(cells), items=cells, notes=notes, seconds=time.perf_counter() - start)


# --- running and printing ---------------------------------------------------------------------------------------

def run_measures(names: Sequence[str] = MEASURES, settings: QualitySettings = QualitySettings()) -> list[Measure]:
    """Run the named measures; transfer and dataset share one logit render."""
    bad = [n for n in names if n not in MEASURES]
    if bad:
        raise unknown("quality measure", bad[0], MEASURES)
    out: list[Measure] = []
    logits, render_seconds = None, 0.0
    if "transfer" in names or "dataset" in names:
        digits_data()  # fail early, with the install hint, when scikit-learn is missing
        if "transfer" in names and list(settings.logit_units):
            start = time.perf_counter()
            logits = _digits_render(settings, "logit", settings.logit_units)
            render_seconds = time.perf_counter() - start
    for name in MEASURES:
        if name not in names:
            continue
        if name == "transfer":
            out.append(measure_transfer(settings, logits))
            out[-1].seconds += render_seconds  # the shared logit render is counted once, here
        elif name == "dataset":
            out.append(measure_dataset(settings, logits))
        else:
            out.append(measure_planted(settings))
    return out


def format_report(measures: Sequence[Measure], settings: QualitySettings) -> str:
    """The summary table, then the notes and the planted cells."""
    rows = [("measure", "figure", "goal", "result")]
    rows += [(m.title, m.figure_text, m.goal_text, "ok" if m.passed else "MISSED") for m in measures]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    header = (f"dreamlab quality: device {settings.device}, seed {settings.seed}, digits steps "
              f"{settings.steps or 'recipe (256)'}, planted steps {settings.planted_steps or 'recipe (1024)'}")
    lines = [header, ""]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    for m in measures:
        for note in m.notes:
            lines.append(f"  {m.name}: {note}")
        if m.name == "planted":
            lines.append("")
            lines.append(f"planted filters per cell (recovered = orientation within {ORIENTATION_GOAL:g} deg and "
                         f"correlation >= {CORRELATION_GOAL:g}):")
            lines.append(f"  {'model':8} {'param':8} {'transforms':10} {'recovered':>9} {'min corr':>8} "
                         f"{'max err (deg)':>13}")
            for c in m.items:
                lines.append(f"  {c['model']:8} {c['param']:8} {c['transforms']:10} "
                             f"{c['recovered']:>5}/{c['channels']:<3} {c['min_correlation']:8.2f} "
                             f"{c['max_orientation_error']:11.1f}")
    lines.append("")
    lines.append(f"{sum(m.passed for m in measures)}/{len(measures)} goals met in "
                 f"{sum(m.seconds for m in measures):.0f} s")
    return "\n".join(lines)


__all__ = ["QualitySettings", "FAST", "Measure", "measure_transfer", "measure_dataset", "measure_planted",
           "planted_cell", "run_measures", "format_report", "unit_scores", "digits_data"]
