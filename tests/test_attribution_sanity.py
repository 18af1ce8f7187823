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
        if method in ("gradcam", "gradcam++"):
            return gradcam(copy, x, target, method=method)
        return attribute(copy, x, target, method)

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


class _Stacked(torch.nn.Module):
    """A ViT-like net: a bare token, a plain `features` container, an `encoder` that holds a stack of blocks and
    a bare position embedding, a head, and an auxiliary head that never runs in the forward pass."""

    def __init__(self):
        super().__init__()
        from torch import nn

        torch.manual_seed(0)
        self.token = nn.Parameter(torch.zeros(1, 4, 1, 1))
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.encoder = _Encoder()
        self.aux = nn.Linear(4, 10)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4, 10))

    def forward(self, x):
        h = self.features(x) + self.token
        return self.head(self.encoder(h).mean((2, 3), keepdim=True))


class _Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from torch import nn

        self.position = nn.Parameter(torch.randn(1, 4, 1, 1) * 0.02)
        self.layers = nn.Sequential(_Block(), _Block())
        self.norm = nn.GroupNorm(1, 4)

    def forward(self, x):
        return self.norm(self.layers(x + self.position))


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 1)
        self.scale = torch.nn.Parameter(torch.full((1, 4, 1, 1), 1e-6))  # bare, as ConvNeXt's layer scale

    def forward(self, x):
        return x + self.scale * self.conv(x).relu()


def test_blocks_descend_into_containers_skip_what_never_runs_and_include_bare_parameters():
    model = _Stacked().eval()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    blocks = blocks_top_down(model, lambda: model(x))
    assert blocks == ["head.1", "encoder.norm", "encoder.layers.1", "encoder.layers.0", "encoder.position",
                      "features.2", "features.0", "token"]  # no `aux`: it never runs
    assert "aux" in blocks_top_down(model)  # without a forward to watch, every block (registration order)
    # the default blocks of the cascade are those the trained model's attribution ran
    steps = cascading_randomization(model, lambda m: m(x)[:, :, None, None].expand(2, 10, 1, 1))
    assert [s.randomized for s in steps] == blocks


def test_reinitialize_redraws_bare_parameters_and_randomize_takes_their_address():
    from dreamlab.attribution.sanity import randomize, reinitialize

    model = _Stacked()
    before = {k: v.clone() for k, v in model.named_parameters()}
    reinitialize(model.encoder.layers[0], seed=1)
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, before[k])}
    assert changed == {"encoder.layers.0.conv.weight", "encoder.layers.0.conv.bias", "encoder.layers.0.scale"}
    randomize(model, "token", seed=2)
    assert not torch.equal(model.token, before["token"]) and float(model.token.detach().abs().max()) <= 0.04
    randomize(model, "encoder.position", seed=2)
    assert not torch.equal(model.encoder.position, before["encoder.position"])
    with torch.no_grad():
        model.token.zero_()
    randomize(model, "token", seed=2)
    again = model.token.clone()
    with torch.no_grad():
        model.token.zero_()
    randomize(model, "token", seed=2)
    assert torch.equal(model.token, again)  # seeded


def test_torchvision_containers_give_one_row_per_layer_and_vit_tokens_are_blocks():
    import torchvision

    vgg = torchvision.models.vgg11(num_classes=10).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert blocks_top_down(vgg, lambda: vgg(x)) == [
            "classifier.6", "classifier.3", "classifier.0", "features.18", "features.16", "features.13",
            "features.11", "features.8", "features.6", "features.3", "features.0"]
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=16, num_layers=3, num_heads=2,
                                               hidden_dim=8, mlp_dim=16, num_classes=10).eval()
    with torch.no_grad():
        blocks = blocks_top_down(vit, lambda: vit(x))
    assert blocks == ["heads.head", "encoder.ln", "encoder.layers.encoder_layer_2", "encoder.layers.encoder_layer_1",
                      "encoder.layers.encoder_layer_0", "encoder.pos_embedding", "conv_proj", "class_token"]
    steps = cascading_randomization(vit, lambda m: m(x)[:, :, None, None], blocks)
    assert [s.randomized for s in steps] == blocks


def test_gradcam_plus_plus_nearly_fails_the_check_on_digits(digits):
    """Its channel weights are >= 0 at relu2, so its map stays a positive mix of the ink's activations whatever
    the classifier: 0.99 with fc2 re-initialized (README), where Grad-CAM drops below 0.6."""
    plus, cam = _steps(digits, "gradcam++"), _steps(digits, "gradcam")
    assert plus[0].correlation > 0.9 and plus[1].correlation > 0.9
    assert plus[0].correlation > cam[0].correlation + 0.3
    assert plus[-1].correlation < plus[0].correlation - 0.2  # the conv layers do move it
