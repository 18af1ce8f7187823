"""Deletion faithfulness on the embedded digits model's held-out digits, and the curve's mechanics."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dreamlab import attribute, gradcam
from dreamlab.attribution.faithfulness import area, deletion_curve, deletion_score, importance
from dreamlab.attribution.target import subject
from dreamlab.models.zoo.digits import load_digits_split
from dreamlab.optvis import objectives as o

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    _, _, x, y = load_digits_split()
    return subject("lenet-digits"), x[:48], y[:48]


def _score(digits, method: str):
    subj, x, y = digits
    target = o.logit(y.tolist())  # each digit attributed to its own label
    options = {"smoothgrad": {"samples": 8}, "ig": {"steps": 16}}.get(method, {})  # what each method reads
    maps = gradcam(subj, x, target, method=method) if method.startswith("gradcam") else \
        attribute(subj, x, target, method, **options)
    return deletion_score(subj.model, subj.normalize, x, y, maps, method, signed=method == "ig", steps=10,
                          random_orders=2)


@pytest.mark.parametrize("method, most", [("saliency", 0.5), ("ig", 0.5), ("gradcam", 1.0), ("guided", 1.0),
                                          ("deconvnet", 1.0), ("smoothgrad", 1.0), ("guided-gradcam", 1.0),
                                          ("gradcam++", 1.0)])
def test_deletion_area_beats_random(digits, method, most):
    """Saliency and IG: at least 2x lower area than random orders; every other method: lower (issue #14)."""
    score = _score(digits, method)
    assert 0 < score.area and 0 < score.random_area < 1
    assert score.ratio < most, score


def test_the_measure_fails_a_map_that_points_at_the_background(digits):
    """A negative control: deleting the least attributed pixels first must do worse than random."""
    subj, x, y = digits
    ig = attribute(subj, x, o.logit(y.tolist()), "ig", steps=16)
    assert deletion_score(subj.model, subj.normalize, x, y, -ig, "inverted ig", signed=True, steps=10,
                          random_orders=2).ratio > 1


def test_curve_deletes_pixels_in_order_to_the_background():
    class Peek(nn.Module):  # "class 0 probability" = softmax of (pixel 0 sum, 0): reveals what was deleted
        def forward(self, x):
            return torch.stack([x[:, 0, 0, :2].sum(1) * 50, torch.zeros(len(x))], 1)

    images = torch.ones(1, 1, 2, 2)
    order = torch.tensor([[0, 1, 2, 3]])  # pixel (0, 0) first, then (0, 1)
    curve = deletion_curve(Peek(), lambda v: v, images, torch.tensor([0]), order, steps=4)
    assert curve.shape == (1, 5)
    assert curve[0, 0] > 0.99 and 0.99 < curve[0, 1] and abs(curve[0, 2] - 0.5) < 1e-6  # both gone after 2/4
    torch.testing.assert_close(area(torch.tensor([[1.0, 0.0]])), torch.tensor([0.5]))


def test_importance_ranks_by_magnitude_or_by_signed_sum():
    a = torch.tensor([[[[1.0, -3.0]], [[2.0, 0.5]]]])  # [1, 2 channels, 1, 2]
    assert importance(a, signed=False).tolist() == [[2.0, 3.0]]
    assert importance(a, signed=True).tolist() == [[3.0, -2.5]]
