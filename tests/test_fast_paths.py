"""The speed paths (early stop, bf16 autocast, channels_last) compute what the plain path computes."""
from __future__ import annotations

import pytest
import torch

from dreamlab import objectives as o
from dreamlab import render
from dreamlab.optvis.capture import capture

from models_fixtures import random_googlenet


@pytest.fixture(scope="module")
def googlenet():
    return random_googlenet()


def test_early_stop_gives_the_same_scores_and_gradients(googlenet):
    obj = o.channel("inception4c", range(3))
    results = []
    for stop_early in (True, False):
        x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
        with capture(googlenet, obj.layers, stop_early=stop_early) as cap:
            score = obj(cap.run(x))
        score.sum().backward()
        results.append((score.detach(), x.grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.allclose(results[0][1], results[1][1], atol=1e-7)


def test_early_stop_skips_the_layers_after_the_objective(googlenet):
    ran = []
    handle = googlenet.inception5b.register_forward_pre_hook(lambda m, i: ran.append(1))
    try:
        with capture(googlenet, {"inception4c"}) as cap:
            cap.run(torch.rand(1, 3, 64, 64))  # the first run goes to the end: it checks for reused modules
            ran.clear()
            cap.run(torch.rand(1, 3, 64, 64))
    finally:
        handle.remove()
    assert ran == []


def score_and_gradient(model, x, layout=torch.contiguous_format, precision=None):
    """One step of the render loop's maths: scores of inception4c:0-3 and their gradient w.r.t. the input."""
    obj = o.channel("inception4c", range(4))
    x = x.clone().to(memory_format=layout).requires_grad_(True)
    with capture(model, obj.layers) as cap:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            score = obj(cap.run(x))
    score.sum().backward()
    return score.detach(), x.grad


def test_channels_last_matches_the_plain_layout(googlenet):
    import copy

    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    plain = score_and_gradient(googlenet, x)
    fast_model = copy.deepcopy(googlenet).to(memory_format=torch.channels_last)
    fast = score_and_gradient(fast_model, x, layout=torch.channels_last)
    assert torch.allclose(plain[0], fast[0], rtol=1e-4, atol=1e-6)
    assert torch.allclose(plain[1], fast[1], rtol=1e-3, atol=1e-6 * plain[1].abs().max())


def test_bf16_autocast_stays_close_to_fp32(googlenet):
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    fp32 = score_and_gradient(googlenet, x)
    bf16 = score_and_gradient(googlenet, x, precision="bf16")
    assert torch.allclose(fp32[0], bf16[0], rtol=0.05, atol=0.02 * fp32[0].abs().max())
    cosine = torch.nn.functional.cosine_similarity(fp32[1].flatten(1), bf16[1].flatten(1).float())
    assert torch.all(cosine > 0.9), cosine  # bf16 keeps 8 bits of mantissa through ~40 layers


def test_render_in_bf16_and_channels_last_still_optimizes(googlenet):
    result = render(googlenet, "inception4c:0-3", steps=6, size=64, device="cpu", transforms="none",
                    precision="bf16", channels_last=True)
    assert result.provenance["dreamlab:precision"] == "bf16"
    assert torch.all(result.final_scores > result.initial_scores)


class _HostReads(torch.overrides.TorchFunctionMode):
    """Counts the tensor calls that read a value back to the host, or copy host values to the device
    (`torch.tensor([...], device=cuda)`): on a GPU each one waits for the queued work."""

    READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__bool__, torch.Tensor.__float__,
             torch.Tensor.__int__, torch.Tensor.__index__, torch.Tensor.cpu, torch.Tensor.numpy,
             torch.Tensor.nonzero, torch.nonzero, torch.tensor, torch.as_tensor, torch.Tensor.new_tensor}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        to_host = func is torch.Tensor.to and any(str(a) == "cpu" for a in (*args[1:], *kwargs.values()))
        self.count += func in self.READS or to_host
        return func(*args, **kwargs)


def _reads(model, objective, steps: int) -> int:
    with _HostReads() as mode:
        render(model, objective, steps=steps, device="cpu", thresholds=[4], redirect_relu_steps=3)
    return mode.count


def test_the_step_loop_reads_nothing_back_to_the_host():
    """test_gpu.py's no-sync check as logic on the CPU: the host reads of a render do not grow with its steps."""
    from dreamlab import load_model
    from dreamlab.optvis.objectives import Objective

    digits = load_model("lenet-digits")
    assert _reads(digits, "conv2:0-3", 6) == _reads(digits, "conv2:0-3", 16)
    # negative control: an objective that reads a value every step is seen
    def read_every_step(acts, index):
        return acts["conv2"][:, 0].mean((1, 2)) * float(acts["conv2"].detach().max())

    reading = Objective(read_every_step, frozenset({"conv2"}), "reading", ("reading",))
    assert _reads(digits, reading, 16) - _reads(digits, reading, 6) >= 10


def test_units_in_one_batch_do_not_affect_each_other():
    """A unit renders the same alone in small batches as among 50, up to float rounding, over the first steps.

    Later the optimization amplifies rounding (the kernels' blocking differs per batch size on some CPUs): at 256
    steps a few units can differ visibly, which gallery/README.md says. Cross-talk between the units of a batch
    (a batch-wide normalization, shared random transforms) would show at once; another seed is the control."""
    from dreamlab import load_model

    digits = load_model("lenet-digits")
    whole = render(digits, "conv2:0-49", steps=4, device="cpu")
    split = render(digits, "conv2:0-49", steps=4, device="cpu", batch_size=3)
    other_seed = render(digits, "conv2:0-49", steps=4, device="cpu", batch_size=3, seed=1)
    assert (whole.images - split.images).abs().max() < 1e-6
    assert (whole.images - other_seed.images).abs().max() > 1e-3
