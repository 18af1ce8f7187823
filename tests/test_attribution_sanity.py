"""The cascading model-randomization test (Adebayo et al. 2018): guided backprop fails it, saliency passes."""
from __future__ import annotations

import pytest
import torch

from dreamlab import attribute, gradcam
from dreamlab.attribution.sanity import blocks_top_down, cascading_randomization, rank_correlation
from dreamlab.attribution.target import Subject, subject
from dreamlab.models.zoo.digits import load_digits_split
from dreamlab.optvis import objectives as o

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    _, _, x, y = load_digits_split()
    return subject("lenet-digits"), x[:16], o.logit(y[:16].tolist())


def _steps(digits, method):
    subj, x, target = digits

    def run(model):
        copy = Subject(model, subj.recipe, subj.categories)
        return gradcam(copy, x, target) if method == "gradcam" else attribute(copy, x, target, method)

    return cascading_randomization(subj.model, run)


def test_guided_backprop_fails_the_check_and_saliency_passes(digits):
    subj = digits[0]
    before = {k: v.clone() for k, v in subj.model.state_dict().items()}
    saliency, guided, cam = _steps(digits, "saliency"), _steps(digits, "guided"), _steps(digits, "gradcam")
    assert [s.randomized for s in guided] == ["fc2", "fc1", "conv2", "conv1"]
    # with the classifier re-initialized, guided backprop's map is nearly the trained model's (it shows edges)
    assert guided[0].correlation > 0.8
    assert saliency[0].correlation < 0.6 and cam[0].correlation < 0.6
    assert guided[0].correlation > saliency[0].correlation + 0.3
    assert all(s.correlation < 0.6 for s in saliency)
    assert all(torch.equal(v, subj.model.state_dict()[k]) for k, v in before.items())  # the copy was randomized


def test_blocks_are_the_top_level_children_with_parameters_last_first(digits):
    assert blocks_top_down(digits[0].model) == ["fc2", "fc1", "conv2", "conv1"]


def test_rank_correlation_uses_average_ranks_for_ties():
    a = torch.tensor([[0.0, 0.0, 0.0, 1.0, 2.0]])
    assert float(rank_correlation(a, a)) == pytest.approx(1.0)
    assert float(rank_correlation(a, -a)) == pytest.approx(-1.0)
    b = torch.tensor([[0.0, 0.0, 0.0, 2.0, 1.0]])  # ranks (2, 2, 2, 5, 4) against (2, 2, 2, 4, 5): 7 / 8
    assert float(rank_correlation(a, b)) == pytest.approx(0.875)


def test_an_all_zero_map_has_no_rank_correlation(digits):
    a = torch.tensor([[0.0, 0.0, 1.0, 2.0], [0.0, 1.0, 3.0, 2.0]])
    zero = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    r = rank_correlation(a, zero)
    assert torch.isnan(r[0]) and float(r[1]) == pytest.approx(0.8)  # constant ranks: undefined, not 0
    assert torch.isnan(rank_correlation(zero[:1], zero[:1])).all()
    subj = digits[0]
    steps = cascading_randomization(subj.model, lambda model: torch.zeros(2, 1, 4, 4))
    assert [s.randomized for s in steps] == ["fc2", "fc1", "conv2", "conv1"]
    assert all(s.correlation != s.correlation for s in steps)  # NaN at every step

    def half_zero(model):  # image 0's map is all zero, image 1's is the model's saliency: the mean skips image 0
        copy = Subject(model, subj.recipe, subj.categories)
        x = digits[1][:1]
        return torch.cat([torch.zeros_like(x), attribute(copy, x, "logit:0")])

    mixed = cascading_randomization(subj.model, half_zero)
    alone = cascading_randomization(subj.model, lambda model: attribute(Subject(model, subj.recipe,
                                                                                subj.categories),
                                                                        digits[1][:1], "logit:0"))
    assert [s.correlation for s in mixed] == pytest.approx([s.correlation for s in alone])
