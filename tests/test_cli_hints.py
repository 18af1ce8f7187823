"""Hints that name what the user typed: the model in `dreamlab layers MODEL`, logit among the layers."""
from __future__ import annotations

import json
import re

import pytest
import torch

import dreamlab
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError


def test_a_typo_of_logit_is_matched_and_the_hint_names_the_model(capsys):
    assert main(["render", "logti:3", "--model", "lenet-digits", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dreamlab: error: unknown layer 'logti'; close matches: logit; valid: conv1, ")
    assert ", fc2, logit; `dreamlab layers lenet-digits` lists them all" in err and err.count("\n") == 1


def test_a_model_path_with_a_space_is_quoted_in_the_hint(tmp_path, capsys):
    recipe = tmp_path / "my recipe.toml"
    recipe.write_text('name = "mine"\nbuilder = "zoo:lenet_digits"\ninput_size = 28\nchannels = 1\n'
                      'mean = [0.0]\nstd = [1.0]\n')
    assert main(["render", "nosuch:3", "--model", str(recipe), "--steps", "1"]) == 2
    assert f"`dreamlab layers '{recipe}'` lists them all" in capsys.readouterr().err


def test_the_python_api_names_a_loaded_model_and_keeps_the_placeholder_for_others():
    with pytest.raises(DreamlabError, match=r"close matches: logit; .*`dreamlab layers lenet-digits` lists them all "
                                            r"\(in Python: dreamlab.layer_table\(model\)\)$"):
        dreamlab.render("lenet-digits", "logti:3", steps=1)
    own = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))  # a model of the caller's own: no name is known
    with pytest.raises(DreamlabError, match=r"`dreamlab layers MODEL` lists them all \(in Python: "):
        dreamlab.render(own, "logti:3", steps=1, size=16)


@pytest.mark.parametrize("argv, hint", [
    (["render", "conv2:3", "--model", "lenet-digits", "--iterations", "3"],
     "use --steps (dreamlab's name for --iterations)"),
    (["dream", "china", "--n-octaves", "3"], "use --octaves (dreamlab's name for --n-octaves)"),
    (["render", "conv2:3", "--learning-rate", "0.1"], "use --lr (dreamlab's name for --learning-rate)"),
    (["render", "conv2:3", "--gpu"], "use --device cuda (dreamlab's name for --gpu)"),
    # a two-word name of ours is a flag with '-' (was '--model_size', no option, so a wrong guess was made)
    (["render", "conv2:3", "--fixed-image-size", "28"],
     "use --model-size (dreamlab's name for --fixed-image-size)"),
    (["render", "conv2:3", "--decay-power", "1"], "use --fourier-decay (dreamlab's name for --decay-power)"),
])
def test_another_tools_name_for_a_flag_gets_ours(argv, hint, capsys):
    with pytest.raises(SystemExit) as exit_:  # argparse's errors exit from the parser
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dreamlab: error: unrecognized arguments: {argv[-2] if argv[-1][0] != '-' else argv[-1]}")
    assert hint in err and err.count("\n") == 1


def test_an_alias_a_command_has_no_flag_for_is_not_suggested(capsys):
    with pytest.raises(SystemExit):
        main(["layers", "lenet-digits", "--gpu"])
    assert capsys.readouterr().err == "dreamlab: error: unrecognized arguments: --gpu (see dreamlab layers --help)\n"


@pytest.mark.parametrize("command", ["", "render", "gallery", "dream", "cam", "attribute", "layers", "graph",
                                     "kernels", "features", "examples", "recipes", "fetch", "quality", "bench"])
def test_help_does_not_load_torch(command):
    import subprocess
    import sys

    code = ("import sys; from dreamlab.apps.cli import main\ntry:\n    main([c for c in [%r, '--help'] if c])\n"
            "except SystemExit:\n    pass\nprint('torch' in sys.modules, file=sys.stderr)" % command)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "usage: dreamlab" in done.stdout and done.stderr.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("argv, hint", [
    (["layer", "lenet-digits"], "; did you mean layers? (see dreamlab --help)"),
    (["features", "lenet-digits", "conv1", "--image", "china", "--size", "56"],
     "unrecognized arguments: --size 56 (see dreamlab features --help)"),  # no longer "did you mean --image?"
    (["bench", "--compile", "bogus"], "--compile takes an optional MODE: write --compile=default (see"),
    # a space after a list's comma: the shell splits it, and the rest is an argument of its own
    (["gallery", "lenet-digits", "--layers", "conv1,", "conv2"], "unrecognized arguments: conv2; a comma-separated "
     "list is written without spaces: --layers conv1,conv2 (see dreamlab gallery --help)"),
    (["quality", "--measures=transfer,", "kept"], "without spaces: --measures=transfer,kept (see"),
    (["render", "conv2:1,", "conv2:3", "--model", "lenet-digits"],  # --model given: no "the model is an option"
     "unrecognized arguments: conv2:3 (see dreamlab render --help)"),
])
def test_slips_get_a_fitting_hint_or_none(argv, hint, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and hint in capsys.readouterr().err


@pytest.mark.parametrize("argv, hint", [
    (["cam", "lenet-digits", "{photo}", "-o", "out.png"], "--image {photo}"),  # -o's value is not the photo
    (["features", "lenet-digits", "conv1", "china"], "--image china"),
    (["attribute", "--method", "ig", "lenet-digits", "flower"], "--image flower"),
    (["examples", "lenet-digits", "conv2:1", "china", "{photo}"], "--images china {photo}"),
])
def test_a_photo_given_without_its_option_is_named_with_it(argv, hint, tmp_path, capsys):
    photo = tmp_path / "digit.png"
    photo.write_bytes(b"")  # only its name matters: the parser refuses before reading it
    with pytest.raises(SystemExit) as exited:
        main([a.format(photo=photo) for a in argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    flag = "--images/-i" if argv[0] == "examples" else "--image/-i"
    assert err == (f"dreamlab: error: the following arguments are required: {flag}; give the photo"
                   f"{'s' if argv[0] == 'examples' else ''} with the option: {hint.format(photo=photo)} "
                   f"(see dreamlab {argv[0]} --help)\n")


def test_a_missing_photo_with_none_on_the_line_gets_no_hint(capsys):
    with pytest.raises(SystemExit):
        main(["cam", "lenet-digits", "-o", "out.png"])
    assert capsys.readouterr().err == ("dreamlab: error: the following arguments are required: --image/-i "
                                       "(see dreamlab cam --help)\n")


@pytest.mark.parametrize("argv, said", [
    (["render", "conv2:0", "--thresholds", "2", "--thresholds", "3"],
     "argument --thresholds: given twice ('2' and '3'); give them in one comma-separated list: --thresholds 2,3"),
    (["gallery", "lenet-digits", "--layers", "conv1", "--layers=conv2"],
     "argument --layers: given twice ('conv1' and 'conv2'); give them in one comma-separated list: --layers "
     "conv1,conv2"),
    (["gallery", "lenet-digits", "--channels", "0-2", "--channels", "5"],
     "argument --channels: given twice ('0,1,2' and '5'); give them in one comma-separated list: --channels 0,1,2,5"),
    (["quality", "--measures", "transfer", "--measures", "kept"],
     "argument --measures: given twice ('transfer' and 'kept'); give them in one comma-separated list: --measures "
     "transfer,kept"),
    (["attribute", "lenet-digits", "-i", "china", "-M", "saliency", "-M", "ig"],
     "argument --method/-M: given twice ('saliency' and 'ig'); give them in one comma-separated list: -M saliency,ig"),
    (["render", "conv2:0", "--thresholds", ""],
     "argument --thresholds: '' is empty; give comma-separated step counts like 64,256,512, or leave the option out"),
    (["render", "conv2:0", "--thresholds", "2,,3"],
     "argument --thresholds: '2,,3' has an empty item (two commas in a row, or one at an end); give comma-separated "
     "step counts like 64,256,512, or leave the option out"),
])
def test_a_list_option_given_twice_or_empty_is_refused_not_cut_short(argv, said, capsys):
    # argparse keeps the last value of a repeated option: for a list, the first items would be silently dropped
    with pytest.raises(SystemExit) as caught:
        main(argv)
    err = capsys.readouterr().err
    assert caught.value.code == 2 and err.startswith(f"dreamlab: error: {said} (see dreamlab ") and err.count("\n") == 1


def test_examples_reads_the_photos_of_every_images_option(tmp_path):
    from dreamlab.io import read_png_text

    out = tmp_path / "ex.png"
    assert main(["examples", "lenet-digits", "conv2:0", "-i", "china", "-i", "flower", "--size", "28", "--top", "2",
                 "-o", str(out)]) == 0
    names = [photo["name"] for photo in json.loads(read_png_text(out)["dreamlab:images"])]
    assert names == ["china", "flower"]


@pytest.mark.parametrize("command", ["render", "dream", "cam", "attribute", "kernels", "features", "examples", "graph",
                                     "grid", "groups"])
def test_every_output_file_help_says_an_existing_file_is_replaced(command, capsys):
    # one policy for -o in every command that writes a file (gallery resumes its folder instead)
    with pytest.raises(SystemExit) as caught:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert caught.value.code == 0 and "  -o OUT, --out OUT" in out
    option = re.split(r"\n  -", out.split("  -o OUT, --out OUT", 1)[1])[0]  # up to the next option's line
    assert "; a file already there is replaced" in " ".join(option.split())
