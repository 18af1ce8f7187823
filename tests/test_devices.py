"""Device requests: one normalization (cuda gets its index) and one-line errors, checked without a GPU."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dreamlab.apps.cli import main
from dreamlab.devices import resolve_device, same_device
from dreamlab.errors import DreamlabError
from dreamlab.models import prepare


@pytest.fixture
def two_gpus(monkeypatch):
    """Pretend this machine has two CUDA GPUs, the current one being cuda:1 (no tensor is ever put there)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def test_cpu_requests_are_one_device(no_gpu):
    assert resolve_device("cpu") == resolve_device("cpu:0") == resolve_device(torch.device("cpu")) == \
        torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")


def test_a_cpu_index_is_the_cpu_and_a_note_says_it_picks_no_core(no_gpu):
    import warnings

    from dreamlab.errors import DreamlabNote

    with pytest.warns(DreamlabNote) as caught:
        assert resolve_device("cpu:3") == resolve_device(torch.device("cpu", 2)) == torch.device("cpu")
    assert [str(w.message) for w in caught] == [
        "device 'cpu:3' is the CPU: torch has one CPU device, and its index picks no core; rendering on cpu (to "
        "use fewer cores: torch.set_num_threads, or taskset)",
        "device 'cpu:2' is the CPU: torch has one CPU device, and its index picks no core; rendering on cpu (to "
        "use fewer cores: torch.set_num_threads, or taskset)"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cpu:0 is what torch itself prints for the CPU: no note
        assert resolve_device("cpu:0") == torch.device("cpu")


def test_cuda_gets_the_current_index(two_gpus):
    assert resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device(None) == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    assert same_device(torch.device("cuda:1"), torch.device("cuda"))  # torch itself says these differ
    assert not same_device(torch.device("cuda:0"), torch.device("cuda"))
    assert not same_device(torch.device("cpu"), resolve_device("cuda"))
    assert same_device(None, torch.device("cuda"))  # a module without tensors needs no copy


def test_a_missing_gpu_index_is_refused(two_gpus):
    with pytest.raises(DreamlabError, match=r"^device 'cuda:2' does not exist \(2 CUDA GPUs\); valid here: cpu, "
                                            r"cuda, cuda:0, cuda:1"):
        resolve_device("cuda:2")


def test_a_callers_model_already_on_the_gpu_is_not_copied(two_gpus, monkeypatch):
    """The model reports cuda:1 (where its tensors would be); a render asks for plain 'cuda'."""
    model = nn.Linear(2, 2)
    monkeypatch.setattr(prepare, "model_device", lambda m: torch.device("cuda", 1))
    with prepare.prepared_model(model, resolve_device("cuda"), channels_last=False, owned=False) as ready:
        assert ready is model
        assert not model.training and not model.weight.requires_grad
    assert model.training and model.weight.requires_grad  # left as it was found


def test_a_callers_model_on_another_device_is_copied_not_moved(monkeypatch):
    model = nn.Linear(2, 2)
    monkeypatch.setattr(prepare, "model_device", lambda m: torch.device("meta"))
    with prepare.prepared_model(model, torch.device("cpu"), channels_last=False, owned=False) as ready:
        assert ready is not model


@pytest.mark.parametrize("command", [
    ["render", "conv2:1", "--model", "lenet-digits", "--steps", "1"],
    ["gallery", "lenet-digits", "--steps", "1"],
    ["bench", "--steps", "1", "--size", "32", "--units", "1"],
])
@pytest.mark.parametrize("device, message", [
    ("bogus", "unknown device 'bogus'; valid here: cpu"),
    ("tpu", "unknown device 'tpu'; valid here: cpu"),
    ("meta", "cannot render on device 'meta'; valid here: cpu"),
    ("cuda", "device 'cuda' was asked for but no CUDA GPU is available; valid here: cpu"),
    ("cuda:1", "device 'cuda:1' was asked for but no CUDA GPU is available; valid here: cpu"),
])
def test_every_command_refuses_a_bad_device_in_one_line(no_gpu, tmp_path, monkeypatch, capsys, command, device,
                                                         message):
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--device", device]) == 2
    err = capsys.readouterr().err
    assert err == f"dreamlab: error: {message}\n"
    assert not list(tmp_path.iterdir())  # nothing written


def test_render_api_refuses_a_bad_device(no_gpu):
    from dreamlab import load_model, render

    with pytest.raises(DreamlabError, match="^cannot render on device 'meta'; valid here: cpu$"):
        render(load_model("lenet-digits"), "conv2:1", steps=1, device="meta")


@pytest.mark.parametrize("owned, channels_last", [(True, True), (False, False)])
def test_cuda_defaults_are_chosen_without_a_gpu(two_gpus, owned, channels_last):
    """The CUDA-only choices (bf16 autocast, channels_last for dreamlab's own model) as plain logic."""
    from dreamlab import load_model
    from dreamlab.optvis.settings import RenderSettings, resolve_settings

    recipe = load_model("lenet-digits").recipe
    on_gpu = resolve_settings(RenderSettings(), recipe, owned, resolve_device("cuda"))
    assert (on_gpu.device, on_gpu.precision, on_gpu.channels_last) == (torch.device("cuda", 1), "bf16",
                                                                       channels_last)
    on_cpu = resolve_settings(RenderSettings(), recipe, owned, resolve_device("cpu"))
    assert (on_cpu.precision, on_cpu.channels_last) == ("fp32", False)


def test_gallery_ranks_get_one_gpu_each_without_a_gpu(two_gpus, monkeypatch):
    """Under torchrun, plain 'cuda' becomes cuda:LOCAL_RANK; an explicit index is kept."""
    import torch.distributed as dist

    from dreamlab.apps.gallery.ranks import RankGroup

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(torch.cuda, "set_device", lambda dev: None)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)  # as if torchrun's group already existed
    monkeypatch.setattr(dist, "get_rank", lambda: 0)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    assert RankGroup.start("cuda")[1] == torch.device("cuda", 0)  # LOCAL_RANK, not the current device (1)
    assert RankGroup.start(None)[1] == torch.device("cuda", 0)
    assert RankGroup.start("cuda:1")[1] == torch.device("cuda", 1)


@pytest.mark.parametrize("command", [["quality", "--measures", "transfer"],
                                     ["dream", "PHOTO", "--model", "lenet-digits"]])
def test_dream_and_quality_refuse_a_bad_device_too(no_gpu, tmp_path, monkeypatch, capsys, command):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    Image.new("L", (32, 32)).save(tmp_path / "photo.png")
    command = [str(tmp_path / "photo.png") if part == "PHOTO" else part for part in command]
    assert main([*command, "--device", "tpu"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "dreamlab: error: unknown device 'tpu'; valid here: cpu"
