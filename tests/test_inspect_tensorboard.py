"""--tensorboard: event files that TensorBoard's own reader reads back with the scalars and images written."""
from __future__ import annotations

import importlib.util
import time

import pytest
import torch

from dreamlab.apps.cli import main
from dreamlab.inspect import tensorboard as tb
from dreamlab.inspect.tensorboard import TensorBoardLog, image_steps, with_snapshots
from dreamlab.optvis.engine import render

pytestmark = pytest.mark.usefixtures("one_thread")
needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="tensorboard not installed (pip install 'dreamlab[tensorboard]')")


def read_events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_image_steps():
    assert image_steps(64) == [8, 16, 24, 32, 40, 48, 56, 64]
    assert image_steps(20) == [2, 5, 8, 10, 12, 15, 18, 20]  # 8 images, as the help says, not 10
    assert all(len(image_steps(n)) == 8 and image_steps(n)[-1] == n for n in range(8, 300))
    assert image_steps(10, every=4) == [4, 8, 10]
    assert image_steps(3) == [1, 2, 3]


def test_snapshots_can_be_left_to_the_callback():
    seen: dict[int, torch.Tensor] = {}
    kept = render("lenet-digits", "conv2:0-1", steps=4, device="cpu", thresholds=[2, 4])
    left = render("lenet-digits", "conv2:0-1", steps=4, device="cpu", thresholds=[2, 4], keep_snapshots=False,
                  on_snapshot=lambda step, images, labels: seen.__setitem__(step, images))
    assert sorted(kept.snapshots) == [2, 4] and left.snapshots == {}
    assert sorted(seen) == [2, 4] and torch.equal(seen[2], kept.snapshots[2])


def test_grad_norms_are_recorded_per_unit_and_step():
    result = render("lenet-digits", "conv2:0-2", steps=4, device="cpu")
    assert result.grad_norms.shape == (4, 3)
    assert torch.all(result.grad_norms > 0) and torch.isfinite(result.grad_norms).all()
    alone = render("lenet-digits", "conv2:0-2", steps=4, device="cpu", units=[1])
    torch.testing.assert_close(alone.grad_norms[:, 0], result.grad_norms[:, 1], rtol=1e-4, atol=1e-6)


@needs_tensorboard
def test_render_events_hold_the_history_and_images(tmp_path):
    logdir = tmp_path / "tb"
    user_steps: list[int] = []
    with TensorBoardLog(logdir) as log:
        thresholds, callback = with_snapshots(log, 6, [5], lambda step, images, labels: user_steps.append(step),
                                              every=3)
        assert thresholds == [3, 5, 6]
        result = render("lenet-digits", "conv2:0-1", steps=6, device="cpu", thresholds=thresholds,
                        on_snapshot=callback)
        log.write_result(result)
    assert user_steps == [5]  # the caller's snapshots still arrive, only at their own steps
    acc = read_events(logdir)
    for i, label in enumerate(["conv2:0", "conv2:1"]):
        objective = acc.Scalars(f"objective/{label}")
        assert [e.step for e in objective] == list(range(1, 7))
        torch.testing.assert_close(torch.tensor([e.value for e in objective]), result.history[:, i])
        norms = torch.tensor([e.value for e in acc.Scalars(f"grad_norm/{label}")])
        torch.testing.assert_close(norms, result.grad_norms[:, i])
        assert [e.step for e in acc.Images(f"image/{label}")] == [3, 6]
        assert acc.Images(f"image/{label}")[0].width == 28


@needs_tensorboard
def test_an_interrupted_render_logs_the_images_where_it_stopped(tmp_path):
    def stop(step, images, labels):
        raise KeyboardInterrupt

    with TensorBoardLog(tmp_path / "tb") as log:
        thresholds, callback = with_snapshots(log, 20, [3], stop, every=10)
        result = render("lenet-digits", "conv2:0", steps=20, device="cpu", thresholds=thresholds,
                        on_snapshot=callback)
        log.write_result(result)
    assert result.interrupted and result.history.shape[0] < 10  # before the first scheduled image
    images = read_events(tmp_path / "tb").Images("image/conv2:0")
    assert [e.step for e in images] == [result.history.shape[0]]


@needs_tensorboard
def test_render_command_writes_events(tmp_path):
    logdir = tmp_path / "tb"
    assert main(["render", "conv2:3", "--model", "lenet-digits", "--steps", "4", "--device", "cpu",
                 "-o", str(tmp_path / "u.png"), "--tensorboard", str(logdir), "--tensorboard-every", "2"]) == 0
    acc = read_events(logdir)
    assert len(acc.Scalars("objective/conv2:3")) == 4 and len(acc.Scalars("grad_norm/conv2:3")) == 4
    assert [e.step for e in acc.Images("image/conv2:3")] == [2, 4]


@needs_tensorboard
def test_gallery_command_writes_events(tmp_path):
    logdir = tmp_path / "tb"
    assert main(["gallery", "lenet-digits", "--layers", "conv1", "--channels", "0-1", "--steps", "3",
                 "--device", "cpu", "-o", str(tmp_path / "g"), "--tensorboard", str(logdir),
                 "--tensorboard-every", "2"]) == 0
    acc = read_events(logdir)
    assert {t for t in acc.Tags()["scalars"] if t.startswith("objective/")} == {"objective/conv1:0",
                                                                                 "objective/conv1:1"}
    assert len(acc.Scalars("objective/conv1:1")) == 3
    assert [e.step for e in acc.Images("image/conv1:1")] == [2, 3]  # every 2 steps, and the last


@needs_tensorboard
@pytest.mark.parametrize("command", [
    ["render", "conv2:999", "--steps", "2", "-o", "u.png"],  # refused once the model is loaded
    ["dream", "photo.png", "--objective", "conv2:999", "-o", "d.png"],
])
def test_a_refused_run_leaves_no_empty_event_file(tmp_path, monkeypatch, command):
    from dreamlab.io import save_png

    monkeypatch.chdir(tmp_path)
    save_png(torch.rand(1, 28, 28), tmp_path / "photo.png")
    assert main([*command, "--model", "lenet-digits", "--device", "cpu", "--tensorboard", "tb"]) == 2
    assert not (tmp_path / "tb").exists()  # TensorBoard would list an empty run


def test_without_tensorboard_one_line_says_what_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(tb.importlib.util, "find_spec", lambda name: None)
    assert main(["render", "conv2:3", "--model", "lenet-digits", "--steps", "2", "--device", "cpu",
                 "-o", str(tmp_path / "u.png"), "--tensorboard", str(tmp_path / "tb")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("dreamlab: error: --tensorboard needs the tensorboard package; pip install "
                   "'dreamlab[tensorboard]' (or pip install tensorboard)")
    assert not (tmp_path / "u.png").exists()


@pytest.mark.parametrize("command", [["render", "conv2:3", "-o", "u.png"], ["dream", "china", "-o", "d.png"]])
def test_without_tensorboard_the_line_comes_before_the_model_loads(monkeypatch, capsys, tmp_path, command):
    import dreamlab.models.loading as loading

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before --tensorboard was checked")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tb.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(loading, "load_model", no_loading)
    assert main([*command, "--model", "lenet-digits", "--tensorboard", "tb"]) == 2
    assert capsys.readouterr().err.startswith("dreamlab: error: --tensorboard needs the tensorboard package;")


@needs_tensorboard
def test_dream_command_writes_events(tmp_path):
    from dreamlab.io import save_png

    photo = save_png(torch.rand(1, 28, 28), tmp_path / "photo.png")
    logdir = tmp_path / "tb"
    assert main(["dream", str(photo), "--model", "lenet-digits", "--objective", "conv2", "--octaves", "2",
                 "--steps", "3", "--device", "cpu", "-o", str(tmp_path / "d.png"), "--tensorboard", str(logdir)]) == 0
    acc = read_events(logdir)
    assert [e.step for e in acc.Scalars("objective/dream")] == list(range(1, 7))  # 2 octaves x 3 steps
    assert [e.step for e in acc.Images("image/dream")] == [3, 6]  # once per octave by default


@needs_tensorboard
def test_dream_logs_its_last_image_where_every_leaves_it_out(tmp_path):
    from dreamlab.io import save_png

    photo = save_png(torch.rand(1, 28, 28), tmp_path / "photo.png")
    logdir = tmp_path / "tb"
    assert main(["dream", str(photo), "--model", "lenet-digits", "--objective", "conv2", "--octaves", "2",
                 "--steps", "3", "--device", "cpu", "-o", str(tmp_path / "d.png"), "--tensorboard", str(logdir),
                 "--tensorboard-every", "4"]) == 0
    images = read_events(logdir).Images("image/dream")
    assert [e.step for e in images] == [4, 6]  # every 4 steps, and the dream's last, as render logs it
    assert (images[-1].width, images[-1].height) == (28, 28)  # the last octave's image, at the photo's size


@needs_tensorboard
def test_a_finished_zoom_run_again_writes_no_empty_event_file(tmp_path, capsys):
    from dreamlab.io import save_png

    photo = save_png(torch.rand(1, 28, 28), tmp_path / "photo.png")
    args = ["dream", str(photo), "--model", "lenet-digits", "--objective", "conv2", "--octaves", "1", "--steps", "2",
            "--device", "cpu", "--zoom-frames", "2", "-o", str(tmp_path / "z.gif")]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--tensorboard", str(tmp_path / "tb")]) == 0
    assert "writing the animation from them; no step to log to --tensorboard" in capsys.readouterr().err
    assert not (tmp_path / "tb").exists()


@needs_tensorboard
@pytest.mark.filterwarnings("error")  # numpy's warning about casting the NaN image would print after the error line
def test_a_dream_that_fails_keeps_the_steps_it_logged(tmp_path, monkeypatch, capsys):
    import dreamlab.optvis.dream as dream_module
    from dreamlab.io import save_png

    real, calls = dream_module.tiled_gradient, []

    def nan_in_the_second_octave(*args, **kwargs):
        calls.append(1)
        grad, score = real(*args, **kwargs)
        return (grad * float("nan") if len(calls) > 3 else grad), score

    monkeypatch.setattr(dream_module, "tiled_gradient", nan_in_the_second_octave)
    photo = save_png(torch.rand(1, 28, 28), tmp_path / "photo.png")
    logdir = tmp_path / "tb"
    assert main(["dream", str(photo), "--model", "lenet-digits", "--objective", "conv2", "--octaves", "2",
                 "--steps", "3", "--device", "cpu", "-o", str(tmp_path / "d.png"), "--tensorboard", str(logdir)]) == 2
    assert "in octave 2 of 2" in capsys.readouterr().err
    assert [e.step for e in read_events(logdir).Scalars("objective/dream")] == list(range(1, 7))


@pytest.mark.parametrize("label, expected", [
    ("inception4c:97", "inception4c:97"), ("logit:0 #1", "logit:0_div1"),  # a --diversity image, as its file
    ("conv2:3 - 0.5*conv1:2", "conv2:3_-_0.5_conv1:2"),
])
def test_tags_read_as_the_units_file_names_do(label, expected):
    assert tb.tag(label) == expected


@needs_tensorboard
@pytest.mark.parametrize("command", ["render", "dream"])
def test_a_run_again_into_the_same_folder_shows_once_in_tensorboard(tmp_path, capsys, command):
    """Two event files over the same steps draw two lines per tag: the second run says so and hides the first
    (purge_step 1), as its -o replaces the first's PNG."""
    from dreamlab.io import save_png

    photo = save_png(torch.rand(1, 28, 28), tmp_path / "photo.png")
    logdir = tmp_path / "tb"
    argv = (["render", "conv2:3", "--model", "lenet-digits", "--steps", "3"] if command == "render" else
            ["dream", str(photo), "--model", "lenet-digits", "--objective", "conv2", "--octaves", "1", "--steps", "3"])
    argv += ["--device", "cpu", "-o", str(tmp_path / "out.png"), "--tensorboard", str(logdir)]
    assert main(argv) == 0
    assert "TensorBoard" not in capsys.readouterr().err
    # TensorBoard reads a folder's event files in name order: time in seconds, host, pid, then a counter of the
    # process's writers, compared as text (9 after 10); runs of one command are separate processes, seconds apart
    time.sleep(1.1)
    assert main(argv) == 0
    assert (f"dreamlab: note: {str(logdir)!r} holds an earlier run's TensorBoard events: TensorBoard shows this run "
            f"in their place (a second run over the same steps would draw two lines per tag); give another folder "
            f"to keep both\n") in capsys.readouterr().err
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 2
    tag = "objective/conv2:3" if command == "render" else "objective/dream"
    assert [e.step for e in read_events(logdir).Scalars(tag)] == [1, 2, 3]  # not 1, 2, 3, 1, 2, 3
