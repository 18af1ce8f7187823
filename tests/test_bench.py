"""`dreamlab bench`: its JSON lines, the ratios it derives from a peer run, its errors."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from dreamlab.errors import DreamlabError

from dreamlab.apps.bench import (BENCH_MODELS, PeerBenchFailed, check_peer_options, peer_device_env, peer_figure,
                                 ratios, run_peer_bench, same_model_and_layer)
from dreamlab.apps.cli import main
from dreamlab.apps.commands.bench import BENCH_MODEL_NAMES


def test_ratios_compare_with_the_peer_figures_of_the_same_run() -> None:
    ours = {"unit": {"images_per_s": 30.0}, "layer": {"images_per_s": 8000.0}}
    peers = [{"what": "env"},
             {"what": "lucent_render_vis", "batch": 1, "images_per_s": 20.0},
             {"what": "lucent_render_vis", "batch": 128, "images_per_s": 1000.0},
             {"what": "ceiling_googlenet_fwd_bwd", "mode": "fp32", "batch": 128, "images_per_s": 4000.0},
             {"what": "ceiling_googlenet_fwd_bwd", "mode": "bf16_cl", "batch": 128, "images_per_s": 10000.0},
             {"what": "ceiling_googlenet_fwd_bwd", "mode": "bf16_cl", "batch": 256, "error": "out of memory"}]
    assert ratios(ours, peers) == {"unit_vs_lucent_1": 1.5, "layer_vs_lucent_best_batched": 8.0,
                                   "layer_vs_best_fwd_bwd_ceiling": 0.8}
    assert ratios({"unit": {"images_per_s": 30.0}}, []) == {}
    dreams = [{"what": "torch_dreams_render", "batch": 1, "images_per_s": 12.0}]
    assert ratios({"unit": {"images_per_s": 30.0}}, dreams) == {"unit_vs_torch_dreams": 2.5}


def test_ratios_undo_the_peers_rounding_of_images_per_s() -> None:
    # peer_bench.py prints images_per_s to one decimal: 32 steps in 70.04 s print as 0.5, not 0.457
    lucent = {"what": "lucent_render_vis", "batch": 1, "steps": 32, "seconds": 70.04, "images_per_s": 0.5}
    assert ratios({"unit": {"images_per_s": 0.7538}}, [lucent]) == {"unit_vs_lucent_1": 1.65}  # not 1.51
    assert peer_figure({**lucent, "batch": 8, "images_per_s": 3.7}) == pytest.approx(8 * 32 / 70.04)
    ceiling = {"what": "ceiling_googlenet_fwd_bwd", "batch": 8, "ms_per_step": 523.456, "images_per_s": 15.3}
    assert peer_figure(ceiling) == pytest.approx(8000 / 523.456)
    dreams = {"what": "torch_dreams_render", "batch": 1, "steps": 32, "seconds": 41.0, "images_per_s": 0.8}
    assert peer_figure(dreams) == pytest.approx(32 / 41.0)
    # seconds that do not give the printed figure mean something else: the printed one is kept
    assert peer_figure({**lucent, "seconds": 7.0}) == 0.5
    assert peer_figure({**lucent, "seconds": 0, "steps": True}) == 0.5


def test_the_unit_workload_prints_its_figures(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "--workload", "unit", "--steps", "2", "--size", "64", "--device", "cpu"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["what"] == "env"
    unit = lines[1]
    assert (unit["what"], unit["units"], unit["steps"], unit["size"], unit["compile"]) == ("dreamlab_unit", 1, 2,
                                                                                         64, "no")
    assert (unit["model"], unit["objective"]) == ("googlenet", "inception4c:97")  # the default model
    assert unit["images_per_s"] == pytest.approx(2 / unit["seconds"], rel=0.01)
    assert unit["peak_rss_mb"] > 0


def test_the_inceptionv1_workloads_render_lucents_model_and_unit(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "--model", "inceptionv1", "--units", "3", "--steps", "1", "--size", "64", "--device",
                 "cpu"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()][1:]
    assert [(line["what"], line["model"], line["objective"], line["units"]) for line in lines] == [
        ("dreamlab_unit", "inceptionv1", "mixed4a:476", 1), ("dreamlab_layer", "inceptionv1", "mixed4a:0-2", 3)]


def test_the_bench_models_are_listed_once_and_their_layers_are_as_wide_as_said() -> None:
    from dreamlab.models.loading import load_model
    from dreamlab.optvis.capture import capture

    assert list(BENCH_MODEL_NAMES) == list(BENCH_MODELS)  # --help's names, kept free of torch
    for name, spec in BENCH_MODELS.items():
        loaded = load_model(name, weights="none")
        with capture(loaded.model, spec.layer) as cap:
            acts = cap.run(torch.zeros(1, 3, 64, 64))
        assert acts[spec.layer].shape[1] == spec.channels > spec.unit, name
    assert (BENCH_MODELS["inceptionv1"].layer, BENCH_MODELS["inceptionv1"].unit) == ("mixed4a", 476)  # lucent's


def test_a_ratio_says_whether_both_sides_render_the_same_model_and_layer() -> None:
    found = {"unit_vs_lucent_1": 1.2, "layer_vs_lucent_best_batched": 3.0, "unit_vs_torch_dreams": 2.0,
             "layer_vs_best_fwd_bwd_ceiling": 0.5}
    assert same_model_and_layer("inceptionv1", found) == ["unit_vs_lucent_1", "layer_vs_lucent_best_batched"]
    assert same_model_and_layer("googlenet", found) == ["unit_vs_torch_dreams"]  # the ceiling renders nothing
    assert same_model_and_layer("googlenet", {}) == []


@pytest.mark.parametrize("model, same", [("inceptionv1", ["unit_vs_lucent_1"]), ("googlenet", [])])
def test_the_ratios_line_records_the_model(tmp_path: Path, capsys: pytest.CaptureFixture, model: str,
                                           same: list[str]) -> None:
    script = tmp_path / "peer_bench.py"  # a stand-in for lucent at batch 1
    script.write_text("import json\nprint(json.dumps({'what': 'env', 'device': 'cpu'}))\n"
                      "print(json.dumps({'what': 'lucent_render_vis', 'batch': 1, 'images_per_s': 2.0}))\n")
    assert main(["bench", "--model", model, "--workload", "unit", "--steps", "1", "--size", "64", "--device", "cpu",
                 "--peer-bench", str(script), "--peer-site", str(tmp_path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[-1]["what"] == "ratios"
    assert (lines[-1]["model"], lines[-1]["same_model_and_layer"]) == (model, same)
    assert set(lines[-1]) == {"what", "model", "unit_vs_lucent_1", "same_model_and_layer"}


def test_the_peer_benchmark_runs_the_parts_asked_for(tmp_path: Path) -> None:
    script = tmp_path / "peer_bench.py"  # a stand-in that reports the arguments and the GPUs it was given
    script.write_text("import json, os, sys\nprint('noise')\nprint(json.dumps({'what': 'env', 'device': 'cpu'}))\n"
                      "print(json.dumps({'what': 'args', 'argv': sys.argv[1:],"
                      " 'gpus': os.environ['CUDA_VISIBLE_DEVICES'], 'threads': os.environ['OMP_NUM_THREADS']}))\n"
                      "print(json.dumps({'what': 'ceiling_googlenet_fwd_bwd', 'batch': 8, 'images_per_s': 9.0}))\n"
                      "print(json.dumps({'what': 'lucent_render_vis', 'batch': 1, 'images_per_s': 2.0}))\n")
    lines = run_peer_bench(script, tmp_path, steps=8, size=64, batches="1,8", parts="ceiling,lucent",
                           device=torch.device("cpu"))
    assert lines[:2] == [{"what": "env", "device": "cpu"},
                     {"what": "args", "argv": ["--steps", "8", "--size", "64", "--batches", "1,8",
                                               "--only", "ceiling,lucent"],
                      "gpus": "", "threads": str(torch.get_num_threads())}]  # no GPU: the peer takes the CPU


def test_the_peer_benchmark_runs_on_dreamlabs_device() -> None:
    # peer_bench.py has no device option and takes cuda whenever torch sees one: the visible GPUs decide
    assert peer_device_env(torch.device("cpu"), {})["CUDA_VISIBLE_DEVICES"] == ""
    assert peer_device_env(torch.device("cuda", 1), {}) == {"CUDA_VISIBLE_DEVICES": "1"}
    assert peer_device_env(torch.device("cuda", 1), {"CUDA_VISIBLE_DEVICES": "2,3"}) == {"CUDA_VISIBLE_DEVICES": "3"}
    with pytest.raises(DreamlabError, match="--peer-bench runs the peers on cpu or cuda only, not on mps"):
        peer_device_env(torch.device("mps"), {})


def test_a_peer_that_ran_on_another_device_gives_no_ratio(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    script = tmp_path / "peer.py"
    script.write_text("import json\nprint(json.dumps({'what': 'env', 'device': 'NVIDIA H200'}))\n")
    with pytest.raises(PeerBenchFailed) as failed:
        run_peer_bench(script, tmp_path, steps=2, size=32, batches="1", device=torch.device("cpu"))
    assert str(failed.value) == ("peer benchmark ran on 'NVIDIA H200', dreamlab on 'cpu': no ratio is given across "
                                 "devices")


@pytest.mark.parametrize("body, message", [
    ("import json\nprint(json.dumps({'what': 'env'}))\nraise RuntimeError('boom')\n",
     "peer benchmark {script} failed (exit 1): RuntimeError: boom"),
    ("import sys\nsys.exit(3)\n", "peer benchmark {script} failed (exit 3) with nothing on stderr"),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
     "peer benchmark {script} failed (killed by signal 9) with nothing on stderr"),
    ("import json\nprint(json.dumps({'what': 'env'}))\n"  # what peer_bench.py prints without lucent
     "print(json.dumps({'what': 'lucent', 'error': 'ModuleNotFoundError(\"No module named lucent\")'}))\n",
     "peer benchmark could not import lucent: give --peer-site DIR where lucent is installed (now {site}; "
     "../shared/bench/setup_peers.sh installs it)"),
    ("import json\nprint(json.dumps({'what': 'ceiling', 'error': 'RuntimeError(\"no GPU\")'}))\n",
     "peer benchmark part ceiling failed: RuntimeError(\"no GPU\")"),
])
def test_a_failed_peer_benchmark_is_said(tmp_path: Path, capsys: pytest.CaptureFixture, body: str,
                                          message: str) -> None:
    script = tmp_path / "peer.py"
    script.write_text(body)
    with pytest.raises(PeerBenchFailed) as failed:
        run_peer_bench(script, tmp_path, steps=2, size=32, batches="1", parts="lucent")
    assert str(failed.value) == message.format(script=script, site=repr(str(tmp_path)))
    echoed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert echoed == failed.value.lines  # the lines it printed before are kept


def test_a_crashed_peer_exits_1_after_dreamlabs_figures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "boom.py").write_text('raise RuntimeError("boom")\n')
    code = main(["bench", "--peer-bench", str(tmp_path / "boom.py"), "--peer-site", str(tmp_path), "--workload",
                 "layer", "--units", "2", "--steps", "2", "--size", "32", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err == f"dreamlab: error: peer benchmark {tmp_path / 'boom.py'} failed (exit 1): RuntimeError: boom\n"
    assert [json.loads(line)["what"] for line in out.splitlines()] == ["env", "dreamlab_layer"]  # no empty ratios


def test_peer_options_are_checked_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    script = tmp_path / "peer_bench.py"
    script.write_text("")
    (tmp_path / "pyproject.toml").write_text("")
    base = ["bench", "--workload", "layer", "--units", "2", "--steps", "2", "--size", "32", "--device", "cpu"]
    cases = [
        (["--peer-bench", str(script), "--peer-site", str(tmp_path / "nowhere")],
         f"--peer-site {str(tmp_path / 'nowhere')!r} is not a folder, and the peer benchmark imports lucent from it; "
         f"give --peer-site DIR where lucent is installed, or install it there with ../shared/bench/setup_peers.sh"),
        (["--peer-bench", str(tmp_path / "pyproject.toml")],
         f"--peer-bench {str(tmp_path / 'pyproject.toml')!r} is not a Python script; give the peer benchmark, "
         f"../shared/bench/peer_bench.py"),
        (["--peer-bench", str(script), "--peer-site", str(tmp_path), "--peer-parts", "ceiling,lucnet"],
         "--peer-parts 'ceiling,lucnet': unknown part 'lucnet'; valid: ceiling, lucent, dreams (comma-separated)"),
    ]
    for args, message in cases:
        assert main([*base, *args]) == 2
        out, err = capsys.readouterr()
        assert (out, err) == ("", f"dreamlab: error: {message}\n")
    # the ceiling alone imports nothing from --peer-site: a missing folder is no error there
    assert check_peer_options(script, tmp_path / "nowhere", "ceiling").parts == ("ceiling",)
    plan = check_peer_options(script, tmp_path, " ceiling, ,lucent,ceiling", "8, 1,8")
    assert (plan.parts, plan.batches) == (("ceiling", "lucent"), (8, 1))


@pytest.mark.parametrize("parts, batches, workloads, message", [
    ("lucent", "1,x", ["unit", "layer"],
     "--peer-batches '1,x': 'x' is not a positive whole number; give lucent's batch sizes separated by commas, e.g. "
     "1,8,32"),
    ("lucent", "0", ["layer"], "--peer-batches '0': '0' is not a positive whole number"),
    ("lucent", "", ["layer"], "--peer-batches '': '' is not a positive whole number"),
    (",", "1", ["layer"], "--peer-parts ',' names no part; valid: ceiling, lucent, dreams (comma-separated)"),
    ("dreams", "1", ["layer"], "--peer-parts dreams is compared with dreamlab's unit workload, which this run does "
                               "not time; use --workload both (the default) or leave dreams out"),
    ("ceiling", "1", ["unit"], "--peer-parts ceiling is compared with dreamlab's layer workload"),
    ("lucent", "8,32", ["unit"], "--peer-batches '8,32': the unit workload is compared with lucent at batch 1; add 1 "
                                 "to --peer-batches"),
])
def test_peer_options_that_give_no_ratio_or_would_fail_are_refused(tmp_path: Path, parts: str, batches: str,
                                                                   workloads: list[str], message: str) -> None:
    with pytest.raises(DreamlabError) as refused:
        check_peer_options(tmp_path / "peer_bench.py", tmp_path, parts, batches, workloads)
    assert message in str(refused.value)


@pytest.mark.parametrize("args, message", [
    (["--peer-batches", "1,x"], "--peer-batches '1,x': 'x' is not a positive whole number"),  # item 6 of the review
    (["--workload", "layer", "--units", "2", "--peer-parts", "dreams"],
     "--peer-parts dreams is compared with dreamlab's unit workload"),
    (["--peer-parts", "ceiling", "--peer-batches", "1,8"],
     "--peer-batches sets lucent's batch sizes: add lucent to --peer-parts, or leave --peer-batches out"),
    (["--peer-parts", "ceiling", "--peer-site", "SITE"],
     "--peer-site is where lucent and torch-dreams are imported from, and the ceiling imports neither"),
])
def test_the_command_checks_every_peer_option_before_dreamlabs_renders(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                        args: list[str], message: str) -> None:
    script = tmp_path / "peer_bench.py"
    script.write_text("")
    args = [str(tmp_path) if arg == "SITE" else arg for arg in args]
    code = main(["bench", "--steps", "2", "--size", "32", "--device", "cpu", "--peer-bench", str(script), *args])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""  # not even the environment line: nothing was rendered
    assert err.startswith("dreamlab: error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--units", "0"], "--units must be between 1 and 512 (inception4c of googlenet has 512 channels), got 0"),
    (["--model", "inceptionv1", "--units", "509"],
     "--units must be between 1 and 508 (mixed4a of inceptionv1 has 508 channels), got 509"),
    (["--model", "inceptionv2"], "argument --model/-m: 'inceptionv2' is not a model bench renders; did you mean "
                                 "inceptionv1? valid: googlenet (inception4c:97, torch-dreams' unit in the peer "
                                 "benchmark); inceptionv1 (mixed4a:476, lucid's InceptionV1 and the unit lucent "
                                 "renders there)"),
    (["-m", "resnet50"], "'resnet50' is not a model bench renders; valid: googlenet"),
    (["--workload", "dream", "--model", "googlenet"],  # given, even as the default: the dream is googlenet's
     "--workload dream times a fixed DeepDream of 1024x768 on googlenet's inception4c: --model does not apply"),
    (["--ablation", "--model", "inceptionv1"],
     "--ablation times googlenet's inception4c:0-<units-1> with each speed-up switched off alone: --model does "
     "not apply to it"),
    (["--device", "cpu", "--peer-bench", "nowhere/peer_bench.py"],  # refused before the 512-step workloads
     "peer benchmark 'nowhere/peer_bench.py' not found; give the path of the team's peer_bench.py (in this workplace ../shared/bench/peer_bench.py)"),
    (["--device", "cpu", "--peer-bench", "."],  # a folder was told it is not found
     "peer benchmark '.' is a folder, not the script; give the path of the team's peer_bench.py (in this workplace "
     "../shared/bench/peer_bench.py)"),
    (["--device", "cpu", "--peer-bench", "peer_bench.py", "--peer-site", ""],  # was the current folder: the
     "argument --peer-site: an empty path"),                                  # renders ran, then the peer failed
    (["--workload", "unit", "--steps", "1", "--size", "64", "--device", "cpu", "--compile", "fast"],
     "argument --compile: invalid choice: 'fast'"),
    (["--size", "100000"], "--size 100000 is out of range; valid: 32 to 2048 pixels"),
    (["--workload", "dream", "--units", "0"], "--units does not apply to it"),
    (["--workload", "dream", "--size", "64", "--units", "3"],
     "--workload dream times a fixed DeepDream of 1024x768 on googlenet's inception4c: --size, --units do not "
     "apply to it"),
    (["--workload", "dream", "--precision", "fp32", "--peer-parts", "ceiling"],  # options with defaults, given
     "--precision, --peer-parts do not apply to it"),
    (["--workload", "dream", "--transforms", "none"], "--transforms does not apply to it"),
    (["--ablation", "--precision", "bf16", "--batch-size", "4"],
     "--ablation times googlenet's inception4c:0-<units-1> with each speed-up switched off alone: --precision, "
     "--batch-size do not apply to it"),
    (["--peer-parts", "ceiling"], "--peer-parts configures the peer benchmark: add --peer-bench PEER_BENCH_PY"),
    (["--workload", "unit", "--units", "8"], "--workload unit renders one unit: --units does not apply to it"),
    (["--workload", "unit", "--batch-size", "4"], "--workload unit renders one unit: --batch-size does not apply"),
    (["--ablation", "--workload", "layer"], "switched off alone: --workload does not apply to it"),
])
def test_bad_bench_arguments_get_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    try:
        code = main(["bench", *args])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    assert code == 2
    out, err = capsys.readouterr()
    err = err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert out == ""  # refused before the environment line


def test_the_ablation_times_every_variant_against_the_default(capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "--ablation", "--steps", "1", "--size", "64", "--units", "2", "--device", "cpu"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()][1:]
    assert [line["variant"] for line in lines] == ["default", "no_early_stop", "per_unit_loop", "bf16",
                                                    "channels_last", "adam"]
    assert lines[0]["vs_default"] == 1.0
    for line in lines:
        assert line["vs_default"] == pytest.approx(line["ms_per_step"] / lines[0]["ms_per_step"], abs=2e-3)


def test_the_loop_objective_scores_as_the_gather_does() -> None:
    from dreamlab.apps.bench import _loop_objective
    from dreamlab.optvis.objectives import channel

    acts = {"inception4c": torch.randn(3, 8, 4, 4, generator=torch.Generator().manual_seed(0))}
    index = torch.tensor([5, 0, 2])
    units = [1, 3, 4, 6, 7, 2]
    torch.testing.assert_close(_loop_objective("inception4c", units)(acts, index),
                               channel("inception4c", units)(acts, index))


def _layout_spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, bool]]:
    """(channels_last asked for, channels_last found in the model's first spatial conv weight) per render."""
    from dreamlab.optvis import engine

    seen: list[tuple[bool, bool]] = []
    original = engine._Renderer.__init__

    def spy(self, model, objective, recipe, settings, *args, **kwargs):
        weight = next(p for p in model.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[-1] > 1)
        seen.append((settings.channels_last, weight.is_contiguous(memory_format=torch.channels_last)))
        original(self, model, objective, recipe, settings, *args, **kwargs)

    monkeypatch.setattr(engine._Renderer, "__init__", spy)
    return seen


def test_a_channels_last_render_leaves_the_loaded_model_contiguous(monkeypatch: pytest.MonkeyPatch) -> None:
    from dreamlab import load_model, render

    seen = _layout_spy(monkeypatch)
    digits = load_model("lenet-digits")
    render(digits, "conv2:0", steps=1, device="cpu", channels_last=True)
    render(digits, "conv2:0", steps=1, device="cpu", channels_last=False)
    assert seen == [(True, True), (False, False)]
    assert all(p.is_contiguous() for p in digits.model.parameters())


def test_every_ablation_variant_renders_the_layout_it_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    from dreamlab.apps.bench import run_ablation

    seen = _layout_spy(monkeypatch)
    lines = list(run_ablation(steps=1, size=32, units=1, device=torch.device("cpu"), repeats=1))
    assert "channels_last" in [line["variant"] for line in lines]
    assert sum(asked for asked, _ in seen) == 1  # the one channels_last variant
    assert all(asked == found for asked, found in seen), seen


def test_a_failed_peer_benchmark_is_a_runtime_failure() -> None:
    # exit 1 like DownloadError: the command line was right, the peer run failed (2 would say it was wrong)
    assert PeerBenchFailed("peer benchmark failed", []).exit_code == 1


def test_an_unreadable_peer_script_is_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "peer_bench.py"
    script.write_text("")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == script else real_access(path, mode))
    code = main(["bench", "--peer-bench", str(script), "--peer-parts", "ceiling", "--workload", "layer", "--units",
                 "2", "--steps", "2", "--size", "32", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""  # no environment line: nothing was timed
    assert err == (f"dreamlab: error: cannot read peer benchmark {str(script)!r}: permission denied; give a file "
                   f"you can read (chmod u+r)\n")
