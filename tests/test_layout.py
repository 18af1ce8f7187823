"""Channels-last layers ([B, H, W, C]: ConvNeXt's block internals, Swin) are read as [B, C, H, W] everywhere:
the layer table's channel count, capture, render's units and scores, and the compiled forward."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import dreamlab
from dreamlab.errors import DreamlabError
from dreamlab.models.layout import channels_last_layers, is_channels_last, patch_grid, token_maps
from dreamlab.models.summary import layer_table
from dreamlab.optvis.capture import capture


class Permute(nn.Module):
    def __init__(self, *dims: int):
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


class ConvNeXtLike(nn.Module):
    """conv (4 channels) -> to [B, H, W, C] -> Linear to 6 -> back to [B, C, H, W] -> BatchNorm."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.to_last = Permute(0, 2, 3, 1)
        self.lin = nn.Linear(4, 6)
        self.to_first = Permute(0, 3, 1, 2)
        self.bn = nn.BatchNorm2d(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.to_first(self.lin(self.to_last(self.conv(x)))))


def _model() -> ConvNeXtLike:
    torch.manual_seed(0)
    return ConvNeXtLike().eval()


def test_the_layout_is_told_by_the_axes_that_grow_with_the_input():
    assert is_channels_last((1, 8, 8, 6), (1, 12, 12, 6))
    assert not is_channels_last((1, 6, 8, 8), (1, 6, 12, 12))
    assert not is_channels_last((1, 6, 1, 1), (1, 6, 1, 1))  # after global pooling: channels-first
    assert not is_channels_last((1, 6), (1, 6)) and not is_channels_last((1, 8, 8, 6), None)
    model = _model().train()  # a probe in train mode would move BatchNorm's statistics
    stats = model.bn.running_mean.clone()
    found = channels_last_layers(model, ["conv", "to_last", "lin", "to_first", "bn"], torch.rand(2, 3, 16, 16))
    assert found == {"to_last", "lin"}
    assert model.training and torch.equal(model.bn.running_mean, stats)


def test_the_layer_table_counts_the_last_axis_of_channels_last_layers():
    rows = {r.name: r for r in layer_table(_model(), input_size=16)}
    assert (rows["lin"].output_shape, rows["lin"].channels, rows["lin"].channels_last) == ((16, 16, 6), 6, True)
    assert (rows["conv"].channels, rows["conv"].channels_last) == (4, False)
    assert rows["to_first"].channels == 6 and not rows["to_first"].channels_last


def test_capture_and_render_read_channel_k_of_the_last_axis():
    model = _model()
    x = torch.rand(2, 3, 16, 16)
    with capture(model, ["lin", "conv"]) as cap:
        acts = cap.run(x)
        again = cap.run(x)  # later runs transpose in the hook
    truth = model.lin(model.conv(x).permute(0, 2, 3, 1))  # [B, H, W, 6]
    assert acts["lin"].shape == again["lin"].shape == (2, 6, 16, 16) and acts["conv"].shape == (2, 4, 16, 16)
    assert torch.allclose(acts["lin"], truth.permute(0, 3, 1, 2)) and torch.allclose(again["lin"], acts["lin"])

    result = dreamlab.render(model, "lin:5", steps=4, size=16, device="cpu")
    with torch.no_grad():
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # a plain module's recipe: ImageNet's
        images = (result.images - mean) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        mine = model.lin(model.conv(images).permute(0, 2, 3, 1))[..., 5].mean((1, 2))
    assert result.final_scores.tolist() == pytest.approx(mine.tolist(), rel=1e-4)
    with pytest.raises(DreamlabError, match=r"channel 6 is out of range.*valid 0-5"):
        dreamlab.render(model, "lin:6", steps=1, size=16, device="cpu")  # 6 channels, not 16 rows


def test_the_model_called_directly_inside_capture_reads_channels_last_layers_transposed_too():
    """Lucent's habit, `model(x)` in the with block instead of cap.run(x): the first forward finds the layouts
    as run() does, and a run() after it does not transpose again."""
    model = _model()
    x = torch.rand(2, 3, 16, 16)
    truth = model.lin(model.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    with torch.no_grad(), capture(model, ["lin", "conv"]) as cap:
        model(x)
        assert cap.acts["lin"].shape == (2, 6, 16, 16) and torch.allclose(cap.acts["lin"], truth)
        assert cap.acts["conv"].shape == (2, 4, 16, 16)
        assert torch.allclose(cap.run(x)["lin"], truth)



def test_convnext_units_are_its_channels():
    model = torchvision.models.convnext_tiny().eval()  # random weights: the layout is the architecture's
    rows = {r.name: r for r in layer_table(model, input_size=32)}
    assert rows["features.1.0.block.3"].channels == 384 and rows["features.1.0.block.3"].channels_last
    result = dreamlab.render(model, "features.1.0.block.3:100", recipe="convnext_tiny", steps=1, size=32,
                             device="cpu")
    assert result.labels == ["features.1.0.block.3:100"]


def test_the_compiled_forward_reads_them_as_capture_does():
    """--compile traces the model without Capture's hooks: the engine transposes the same layers."""
    model = _model()
    settings = {"steps": 6, "size": 16, "device": "cpu", "seed": 1, "redirect_relu_steps": 0}
    eager = dreamlab.render(model, "lin:0-2", **settings)
    compiled = dreamlab.render(model, "lin:0-2", compile="default", **settings)
    assert compiled.final_scores.tolist() == pytest.approx(eager.final_scores.tolist(), abs=1e-4)
    assert (compiled.images - eager.images).abs().max() < 1e-4


def test_grad_cam_at_a_channels_last_layer_weights_its_channels():
    """Grad-CAM at `lin` weights its 6 channels (read as [B, H, W, C], its 'channels' would be the map's rows):
    the map equals the one computed by hand from the [B, C, H, W] activations and gradients."""
    model = _model()
    image = torch.rand(3, 16, 16)
    cam = dreamlab.gradcam(model, image, "lin:2", layer="lin",
                           recipe=dreamlab.Recipe("tiny", "custom:tiny", input_size=16))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    x = ((image - mean) / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1))[None]
    acts = model.lin(model.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(acts[:, 2].mean(), acts)
    mine = (grad.mean((2, 3), keepdim=True) * acts).sum(1).clamp(min=0)[0].detach()
    assert cam.shape == (1, 16, 16)
    assert torch.allclose(cam[0] / cam.max(), mine / mine.max(), atol=1e-4)


class TinyViT(nn.Module):
    """4-px patches -> tokens [B, N, 5] -> Linear (5 hidden units) -> mean over tokens -> 3 logits; `fixed` makes
    it refuse any size but 16 px, as torchvision's ViT does (the probe at a larger size then fails)."""

    def __init__(self, fixed: bool = False):
        super().__init__()
        self.fixed = fixed
        self.patch = nn.Conv2d(3, 5, 4, stride=4)
        self.mlp = nn.Linear(5, 5)
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fixed:
            torch._assert(x.shape[-1] == 16, "this model takes 16-px images")
        tokens = self.patch(x).flatten(2).transpose(1, 2)  # [B, N, 5]
        return self.head(self.mlp(tokens).mean(1))


@pytest.mark.parametrize("fixed", [False, True])
def test_a_token_sequence_is_read_by_its_hidden_units(fixed):
    torch.manual_seed(0)
    model = TinyViT(fixed).eval()
    rows = {r.name: r for r in layer_table(model, input_size=16)}
    assert (rows["mlp"].output_shape, rows["mlp"].channels, rows["mlp"].channels_last) == ((16, 5), 5, True)
    x = torch.rand(2, 3, 16, 16)
    with capture(model, "mlp") as cap:
        acts = cap.run(x)
    truth = model.mlp(model.patch(x).flatten(2).transpose(1, 2))  # [B, 16 tokens, 5]
    assert acts["mlp"].shape == (2, 5, 16) and torch.allclose(acts["mlp"], truth.transpose(1, 2))
    result = dreamlab.render(model, "mlp:4", steps=2, size=16, transforms="none", device="cpu")
    with pytest.raises(DreamlabError, match=r"channel 5 is out of range.*valid 0-4"):  # 5 units, not 16 tokens
        dreamlab.render(model, "mlp:5", steps=1, size=16, transforms="none", device="cpu")
    assert result.final_scores.shape == (1,)


class DataDependent(ConvNeXtLike):
    """ConvNeXtLike with an `if` on the values: the meta device cannot run it, so both probes run on a CPU copy."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if y.mean() > 0:
            y = y * 2
        return self.bn(self.to_first(self.lin(self.to_last(y))))


def test_a_data_dependent_model_is_probed_on_the_cpu_at_both_sizes():
    torch.manual_seed(0)
    model = DataDependent().eval()
    rows = {r.name: r for r in layer_table(model, input_size=16)}
    assert (rows["lin"].output_shape, rows["lin"].channels, rows["lin"].channels_last) == ((16, 16, 6), 6, True)
    assert channels_last_layers(model, ["conv", "lin", "bn"], torch.rand(2, 3, 16, 16)) == {"lin"}
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(DreamlabError, match=r"channel 6 is out of range.*valid 0-5"):  # 6 channels, not 16 rows
        dreamlab.render(model, "lin:6", steps=1, size=16, device="cpu")


def test_patch_grids_are_k_by_k_tokens_with_or_without_a_class_token_first():
    assert patch_grid(197) == (1, 14) and patch_grid(196) == (0, 14) and patch_grid(5) == (1, 2)
    assert patch_grid(6) is None and patch_grid(2) is None and patch_grid(1) is None and patch_grid(0) is None


def test_token_maps_lay_the_patches_out_row_by_row_and_leave_the_class_token_out():
    tokens = torch.arange(2 * 3 * 5.0).reshape(2, 3, 5)  # [B, D, N]: a class token, then 2x2 patches
    maps = token_maps(tokens, "enc")
    assert maps.shape == (2, 3, 2, 2)
    torch.testing.assert_close(maps[1, 2], torch.tensor([[26.0, 27.0], [28.0, 29.0]]))
    with pytest.raises(DreamlabError, match=r"^layer 'enc' outputs 7 tokens, which are no square grid of patches "
                                            r"\(with or without a class token first\), so they cannot be shown as "
                                            r"maps; pick a layer with maps$"):
        token_maps(torch.zeros(3, 7), "enc")
