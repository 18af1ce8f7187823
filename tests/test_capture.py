"""capture(): what hooks record, that they go away, in-place ReLU and reused modules."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from dreamlab.optvis.capture import ModuleReusedError, capture
from dreamlab.errors import DreamlabError, UnknownNameError


class InplaceBlock(nn.Module):
    """conv -> bn -> F.relu(inplace=True), like torchvision GoogLeNet's BasicConv2d."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Reuser(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 3, 1)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.a(self.act(x)))


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


def test_hook_on_bn_before_inplace_relu_keeps_pre_relu_values():
    torch.manual_seed(0)
    model = InplaceBlock().eval()
    x = torch.randn(2, 3, 8, 8)
    expected = model.bn(model.conv(x))
    assert (expected < 0).any()
    with capture(model, ["bn"], stop_early=False) as cap:
        acts = cap.run(x)
    assert torch.equal(acts["bn"], expected)


def test_module_called_twice_is_detected():
    model = Reuser()
    with capture(model, ["act"], stop_early=False) as cap:
        with pytest.raises(ModuleReusedError, match="'act' runs more than once per forward pass"):
            cap.run(torch.randn(1, 3, 4, 4))
    assert no_hooks(model)


def test_stops_after_the_deepest_layer_once_a_whole_forward_has_run_and_removes_hooks():
    seen = []
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU(), nn.Conv2d(3, 3, 1))
    model[2].register_forward_pre_hook(lambda m, i: seen.append("ran"))
    with capture(model, ["1"]) as cap:
        first = cap.run(torch.randn(1, 3, 4, 4))
        assert seen == ["ran"]  # the first run checks that no requested module runs twice
        acts = cap.run(torch.randn(1, 3, 4, 4))
    assert set(acts) == set(first) == {"1"} and seen == ["ran"]
    assert all(not m._forward_hooks for m in model.modules())


def test_a_module_called_twice_is_refused_with_early_stop_too():
    from torchvision.models import resnet18

    model = resnet18(weights=None).eval()  # each BasicBlock calls its one `relu` module twice
    with capture(model, ["layer1.0.relu"]) as cap:
        with pytest.raises(ModuleReusedError, match=r"'layer1.0.relu' runs more than once per forward pass .*; "
                                                    r"address its block 'layer1.0'"):
            cap.run(torch.randn(1, 3, 32, 32))
    assert no_hooks(model)


class Forgiving(nn.Module):
    """A model whose forward catches every Exception around its first layer."""

    def __init__(self):
        super().__init__()
        self.first = nn.Conv2d(3, 3, 1)
        self.last = nn.Conv2d(3, 3, 1)
        self.calls = 0

    def forward(self, x):
        try:
            x = self.first(x)
        except Exception:  # noqa: BLE001 - what some user models do
            pass
        self.calls += 1
        return self.last(x)


def test_a_models_except_exception_does_not_swallow_the_early_stop():
    model = Forgiving()
    x = torch.randn(1, 3, 4, 4)
    with capture(model, ["first"]) as cap:
        cap.run(x)
        calls = model.calls  # the first, whole forward
        acts = cap.run(x)
    assert model.calls == calls  # the second forward stopped inside `first`
    torch.testing.assert_close(acts["first"], model.first(x))


def test_hooks_removed_on_error_inside_the_block():
    model = nn.Sequential(nn.Conv2d(3, 3, 1))
    with pytest.raises(RuntimeError, match="inside"):
        with capture(model, ["0"]):
            raise RuntimeError("inside")
    assert no_hooks(model)


def test_unknown_layer_lists_close_matches_and_leaves_no_hook():
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(3, 3, 1))
    model.add_module("conv2", nn.Conv2d(3, 3, 1))
    with pytest.raises(UnknownNameError, match="unknown layer 'conv3'; close matches: conv1, conv2; valid: conv1, conv2, logit; `dreamlab layers MODEL` lists them all"):
        with capture(model, ["conv1", "conv3"]):
            pass
    assert no_hooks(model)


def test_logit_captures_the_model_output():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    x = torch.randn(2, 3, 2, 2)
    expected = model(x)
    with capture(model, ["logit"]) as cap:
        assert torch.equal(cap.run(x)["logit"], expected)


def test_one_layer_name_is_one_layer_not_its_characters():
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(3, 3, 1))
    x = torch.randn(1, 3, 2, 2)
    with capture(model, "conv1") as cap:
        assert list(cap.run(x)) == ["conv1"]
    assert no_hooks(model)


@pytest.mark.parametrize("layers, message", [
    (None, r"^layers must be a layer name or a list of them, like capture\(model, \['inception4c'\]\); "
           r"got NoneType$"),
    (["conv1", 2], r"^layers must be layer names \(non-empty strings\), like capture\(model, \['inception4c'\]\); "
                   r"got 2 \(int\)$"),
    ([""], r"got '' \(str\)$"),
    ([], r"^capture got no layers, so it has nothing to record; name at least one, like capture\(model, "
         r"\['inception4c'\]\) \(`dreamlab layers MODEL` lists them; 'logit' is the model's output\)$"),
    ((), r"^capture got no layers"),
])
def test_layers_that_are_not_names_are_refused(layers, message):
    model = nn.Sequential(nn.Conv2d(3, 3, 1))
    with pytest.raises(DreamlabError, match=message):
        with capture(model, layers):
            pass
    assert no_hooks(model)


class LoopedNet(nn.Module):
    """A forward that loops over a ModuleList (as HED's taps do) and has a branch that never runs in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)])
        self.aux = nn.Sequential(nn.Conv2d(4, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.aux(x) if self.training else x


def test_a_container_the_forward_loops_over_names_its_modules_instead():
    model = LoopedNet().eval()
    with pytest.raises(DreamlabError, match=r"layer 'blocks' is never called: the model's forward runs the modules "
                                            r"inside it one by one, .*address one of them \(blocks\.0, blocks\.1, "
                                            r"blocks\.2;"):
        with capture(model, ["blocks"]) as cap:
            cap.run(torch.rand(2, 3, 8, 8))
    with pytest.raises(DreamlabError, match=r"layer 'aux' did not run in the forward pass \(it is unused in eval "
                                            r"mode\)"):
        with capture(model, ["aux"]) as cap:
            cap.run(torch.rand(2, 3, 8, 8))


def test_the_model_called_directly_inside_capture_fills_acts_at_every_forward():
    """Lucent's hook_model habit, `model(x)` inside the with block: each forward's outputs replace the last ones;
    before, the second call was refused as if the module ran twice in one forward."""
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.Conv2d(2, 2, 1))
    first, second = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    with torch.no_grad():
        relu, output = model[1](model[0](second)), model(second)
    with torch.no_grad(), capture(model, ["1"]) as cap:
        model(first)
        model(second)
        assert torch.equal(cap.acts["1"], relu)
        cap.run(first)  # stops early once a whole forward has run
        assert torch.equal(model(second), output)  # no early stop outside run
    with capture(Reuser(), ["act"]) as cap, pytest.raises(ModuleReusedError):
        cap.model(torch.randn(1, 3, 4, 4))  # a module that runs twice in one forward is still refused


def test_capture_takes_what_load_model_returns_and_refuses_a_name_saying_how():
    from dreamlab.errors import DreamlabError
    from dreamlab.models.loading import load_model

    loaded = load_model("lenet-digits")
    with capture(loaded, ["conv1"]) as cap:
        assert cap.run(torch.rand(1, 1, 28, 28))["conv1"].shape == (1, 20, 28, 28)
    with pytest.raises(DreamlabError, match=r"^capture hooks a module you then run, got str; pass "
                                            r"dreamlab.load_model\('lenet-digits'\).model$"):
        with capture("lenet-digits", ["conv1"]):
            pass


@pytest.mark.parametrize("make_input, message", [
    (lambda: np.zeros((1, 3, 8, 8), np.float32), r"^cap.run takes the model's input as a torch tensor \[B, C, H, W\], "
                                                 r"got ndarray: torch.from_numpy\(array\).float\(\) makes one"),
    (lambda: Image.new("RGB", (8, 8)), r"^cap.run takes .*, got Image: torchvision.transforms.functional.to_tensor"),
    (lambda: torch.rand(1, 1, 8, 8), r"^cap.run: x has 1 channel and the model's first convolution reads 3; pass "
                                     r"an image of 3 channels \[B, 3, H, W\]$"),
    (lambda: torch.rand(3, 8, 8), r"^cap.run: x \[3, 8, 8\] has no batch axis; pass x\[None\] \(\[1, C, H, W\]\)$"),
    (lambda: torch.rand(1, 3, 8, 8, dtype=torch.float64),
     r"^cap.run: x is torch.float64 and the model's weights torch.float32; pass x.to\(torch.float32\)$"),
    (lambda: torch.rand(1, 3, 8, 8, device="meta"), r"^cap.run: x is on meta and the model on cpu; pass x.to\('cpu'\)$"),
])
def test_an_input_the_model_cannot_take_is_named_in_one_line(make_input, message):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    model(torch.rand(1, 3, 8, 8))  # materializes the lazy layer
    with capture(model.eval(), ["0"]) as cap, pytest.raises(DreamlabError, match=message):
        cap.run(make_input())


@pytest.mark.parametrize("make_input, message", [
    (lambda: torch.rand(1, 1, 3, 8, 8), r"^cap.run: x \[1, 1, 3, 8, 8\] has 5 axes; the model takes a batch of images, 4 "
                                        r"axes \[B, C, H, W\]$"),
    (lambda: torch.rand(8, 8), r"^cap.run: x \[8, 8\] has 2 axes; the model takes a batch of images, 4 axes"),
    (lambda: torch.rand(3, 8, 8), r"^cap.run: x \[3, 8, 8\] has no batch axis, and 3 channels where the model's first "
                                  r"convolution reads 1; pass a batch of images \[B, 1, H, W\]$"),
    (lambda: torch.rand(1, 8, 8), r"^cap.run: x \[1, 8, 8\] has no batch axis; pass x\[None\] \(\[1, C, H, W\]\)$"),
    (lambda: torch.rand(1, 3, 8, 8), r"^cap.run: x has 3 channels and the model's first convolution reads 1; pass an "
                                     r"image of 1 channel \[B, 1, H, W\]$"),
    (lambda: {"image": torch.rand(1, 1, 8, 8)}, r"^cap.run takes .*, got dict \(for a model that takes another input, "
                                                 r"call the model yourself inside the with-block"),
])
def test_a_one_channel_conv_model_names_inputs_of_other_shapes(make_input, message):
    """A convolution also runs unbatched: [1, 8, 8] used to run, be read as a batch, then crash in the layout probe;
    a 5-D or 2-D input showed conv2d's own error."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()).eval()
    with capture(model, ["0"]) as cap, pytest.raises(DreamlabError, match=message):
        cap.run(make_input())
    with capture(model, ["0"]) as cap:  # the advice followed
        assert cap.run(torch.rand(1, 1, 8, 8))["0"].shape == (1, 4, 6, 6)


def test_a_model_that_takes_a_dict_is_captured_by_calling_it_in_the_with_block():
    class TakesDict(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, inputs):
            return self.conv(inputs["image"])

    model = TakesDict().eval()
    with capture(model, ["conv"]) as cap:
        model({"image": torch.rand(1, 3, 8, 8)})
        assert cap.acts["conv"].shape == (1, 4, 6, 6)


class BreaksMidway(nn.Module):
    """Two convolutions with a check between them that fails for a negative input: the first layer's output is
    captured before the forward raises."""

    def __init__(self):
        super().__init__()
        self.first, self.second = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        y = self.first(x)
        if bool((x < 0).any()):
            raise ValueError("negative pixels")
        return self.second(y)


def test_a_failed_forward_leaves_no_partial_activations_from_run_or_a_direct_call():
    """A forward that raised after its first layers kept their outputs in cap.acts: a stale mix with nothing to
    say which forward they came from."""
    model = BreaksMidway().eval()
    good, bad = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4) - 1
    with torch.no_grad():
        first, second = model.first(good), model(good)
    with torch.no_grad(), capture(model, ["first", "second"]) as cap:
        assert sorted(cap.run(good)) == ["first", "second"]
        with pytest.raises(ValueError, match="^negative pixels$"):
            cap.run(bad)
        assert cap.acts == {} and cap.calls == {}
        model(good)  # a direct call fills acts
        assert sorted(cap.acts) == ["first", "second"]
        with pytest.raises(ValueError, match="^negative pixels$"):
            model(bad)
        assert cap.acts == {} and cap.calls == {}
        assert torch.equal(cap.run(good)["second"], second)  # and the next forward is whole
        model(good)
        assert torch.equal(cap.acts["first"], first)
    assert no_hooks(model)


def test_a_refused_logit_leaves_no_partial_activations():
    """The 'logit' hook's own error (a dict output) comes after the layers' hooks ran: acts is emptied too."""
    class ReturnsDict(BreaksMidway):
        def forward(self, x):
            return {"out": super().forward(x)}

    model = ReturnsDict().eval()
    with capture(model, ["first", "logit"]) as cap:
        with pytest.raises(DreamlabError, match="^the model returns a dict"):
            model(torch.rand(1, 3, 4, 4))
        assert cap.acts == {}


def test_the_models_own_error_still_shows_when_the_input_looks_right():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            raise RuntimeError("a bug of the model's own")

    with capture(Broken(), ["conv"]) as cap, pytest.raises(RuntimeError, match="^a bug of the model's own$"):
        cap.run(torch.rand(1, 3, 8, 8))


def small_vit() -> nn.Module:
    """torchvision's ViT at a width that runs fast: like vit_b_16, it asserts a 224x224 input."""
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(image_size=224, patch_size=16, num_layers=4, num_heads=2, hidden_dim=32,
                             mlp_dim=64).eval()


def pooling_net() -> nn.Module:
    """Convolutions and max pooling: takes any size from 10x10 up."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3), nn.MaxPool2d(2)).eval()


def counted(model: nn.Module) -> list[tuple[bool, torch.dtype, tuple[int, ...]]]:
    """(grad enabled, dtype, shape) of the input of every forward of `model` from now on."""
    seen: list[tuple[bool, torch.dtype, tuple[int, ...]]] = []
    model.register_forward_pre_hook(lambda _m, args: seen.append(
        (torch.is_grad_enabled(), args[0].dtype, tuple(args[0].shape))))
    return seen


def test_a_fixed_size_model_names_the_size_it_runs_on_and_the_capture_still_works():
    model, layer = small_vit(), "encoder.layers.encoder_layer_3"
    with capture(model, [layer]) as cap:
        with pytest.raises(DreamlabError) as caught:
            cap.run(torch.rand(1, 3, 128, 128))
        assert str(caught.value) == (
            "cap.run: x is 128x128, a size the model rejects (Wrong image height! Expected 224 but got 128!); it runs "
            "on 224x224: pass a 224x224 image (torch.nn.functional.interpolate(x, size=(224, 224), "
            "mode=\"bilinear\") makes one)")
        assert isinstance(caught.value.__cause__, AssertionError)
        # the probe's forwards (224 ran whole) left nothing in the capture
        assert (cap.acts, cap.calls, cap._stopping, cap._in_run, cap._idle) == ({}, {}, False, False, False)
        x = torch.rand(2, 3, 224, 224)
        acts = cap.run(x)
        assert cap.calls == {layer: 1} and list(acts) == [layer]
    assert no_hooks(model)
    seen: list[torch.Tensor] = []
    model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: seen.append(out))
    model(x)  # with gradient, as cap.run ran (without it torch's attention takes another, fused path)
    assert acts[layer].shape == (2, 32, 197) and torch.equal(acts[layer], seen[0].transpose(1, 2))


def test_an_input_smaller_than_the_model_takes_names_the_smallest_size():
    model = pooling_net()
    with capture(model, ["0"]) as cap:
        with pytest.raises(DreamlabError, match=r"^cap.run: x is 4x4, a size the model rejects \(Calculated padded "
                                                r"input size per channel: \(1 x 1\)\. .*\); the smallest size it takes "
                                                r"is 10: pass an image of at least 10 pixels a side \(torch\.nn\."
                                                r"functional\.interpolate\(x, size=\(10, 10\), mode=\"bilinear\"\) "
                                                r"makes one\)$") as caught:
            cap.run(torch.rand(1, 3, 4, 4))
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert cap.acts == {} and cap.calls == {}  # the failed forward left nothing, and the probes recorded nothing
        with pytest.raises(DreamlabError, match=r"at least 10 pixels a side \(.*size=\(10, 75\), "):
            cap.run(torch.rand(1, 3, 4, 30))  # the shorter side to 10, the other in proportion
        x = torch.rand(1, 3, 10, 10)
        acts = cap.run(x)
    assert torch.equal(acts["0"], model[0](x))


def test_the_size_probe_runs_without_gradient_on_xs_dtype():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 26 * 26, 2)).double().eval()
    seen = counted(model)
    with capture(model, ["0"]) as cap, pytest.raises(DreamlabError, match=r"^cap.run: x is 32x32, a size the model "
                                                                          r"rejects \(mat1 and mat2 .*\); it runs on "
                                                                          r"28x28: pass a 28x28 image \("):
        cap.run(torch.rand(1, 3, 32, 32, dtype=torch.float64, requires_grad=True))
    assert seen[0] == (True, torch.float64, (1, 3, 32, 32))
    assert {(grad, dtype) for grad, dtype, _ in seen[1:]} == {(False, torch.float64)}
    assert (1, 3, 28, 28) in {shape for *_, shape in seen[1:]}


class FailsOn(nn.Module):
    """A convolution whose forward raises `error` for every input `fails` says."""

    def __init__(self, error: BaseException, fails=lambda x: True):
        super().__init__()
        self.conv, self.error, self.fails = nn.Conv2d(3, 4, 3), error, fails

    def forward(self, x):
        if self.fails(x):
            raise self.error
        return self.conv(x)


@pytest.mark.parametrize("error", [torch.OutOfMemoryError("CUDA out of memory"), DreamlabError("the model's own line"),
                                   TypeError("not a size error")])
def test_memory_and_dreamlab_errors_are_raised_as_they_are_without_a_probe(error):
    model = FailsOn(error)
    seen = counted(model)
    with capture(model, ["conv"]) as cap, pytest.raises(type(error)) as caught:
        cap.run(torch.rand(1, 3, 8, 8))
    assert caught.value is error and len(seen) == 1


def test_a_failure_that_is_not_the_size_shows_the_models_own_error():
    """The model takes x's size (a grey image of it runs): one probe, and its own exception, unchanged."""
    model = FailsOn(ValueError("negative pixels"), lambda x: bool((x < 0).any()))
    seen = counted(model)
    with capture(model, ["conv"]) as cap, pytest.raises(ValueError, match="^negative pixels$"):
        cap.run(torch.rand(1, 3, 8, 8) - 1)
    assert len(seen) == 2 and cap.acts == {}


def test_a_caller_that_words_sizes_itself_gets_the_models_exception():
    from dreamlab.models.prepare import raw_size_errors

    model = pooling_net()
    seen = counted(model)
    with capture(model, ["0"]) as cap, raw_size_errors(), pytest.raises(RuntimeError, match="^Calculated padded"):
        cap.run(torch.rand(1, 3, 4, 4))
    assert len(seen) == 1


def test_run_outside_a_with_block_is_told_so_not_that_the_layer_never_ran():
    model = InplaceBlock().eval()
    cap = capture(model, ["conv"])
    with pytest.raises(DreamlabError) as refused:  # was an AttributeError of a generator's context manager
        cap.run(torch.rand(1, 3, 8, 8))
    assert str(refused.value) == ("cap.run outside a `with` block, where the capture has no hooks; write `with "
                                  "dreamlab.capture(model, layers) as cap:` and call cap.run(x) inside it")
    with cap:  # the same object, entered: the documented form
        assert cap.run(torch.rand(1, 3, 8, 8))["conv"].shape == (1, 4, 6, 6)
    with pytest.raises(DreamlabError, match="^cap.run outside a `with` block"):  # its hooks are gone on exit
        cap.run(torch.rand(1, 3, 8, 8))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_output_module_leaves_a_reused_modules_later_calls_alone():
    from dreamlab.optvis.capture import output_module

    class Shared(nn.Module):  # one ReLU on two shapes, as ResNet's Bottleneck reuses its relu
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.head, self.relu = nn.Conv2d(1, 3, 1), nn.Conv2d(3, 2, 1), nn.Conv2d(2, 2, 1), nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.relu(self.b(self.relu(self.a(x)))))

    model = Shared().eval()
    sample = torch.rand(1, 1, 4, 4)
    found, output = output_module(model, ["a", "relu", "b", "head"], sample)
    assert found == "head" and torch.equal(output, model(sample))  # the hooks changed nothing the model computes
