"""Direction objectives (`objectives.direction`, `render LAYER --direction FILE`): values against a hand
computation, the one-hot case against the channel, bad input, and the command line end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dreamlab
from dreamlab import objectives as o
from dreamlab.apps.cli import main
from dreamlab.errors import DreamlabError
from dreamlab.io import load_vectors, read_png_text


def test_a_one_hot_direction_is_the_channel() -> None:
    acts = {"conv": torch.randn(3, 8, 5, 6)}
    one_hot = torch.zeros(8)
    one_hot[5] = 1
    assert torch.allclose(o.direction("conv", one_hot)(acts), o.channel("conv", 5)(acts), atol=1e-6)


def test_n_directions_render_together_and_match_a_hand_computation() -> None:
    acts = {"conv": torch.randn(3, 8, 5, 6)}
    vectors = torch.randn(3, 8)
    by_hand = torch.stack([(acts["conv"][i] * vectors[i][:, None, None]).sum(0).mean() for i in range(3)])
    obj = o.direction("conv", vectors)
    assert obj.batch_size == 3 and obj.labels == ("conv:direction[0]", "conv:direction[1]", "conv:direction[2]")
    assert torch.allclose(obj(acts), by_hand, atol=1e-5)
    assert obj.per_position  # a mean over positions: DeepDream's tiles add up


def test_cossim_power_weights_each_position_by_its_floored_cosine() -> None:
    acts = {"conv": torch.randn(2, 4, 3, 3)}
    v = torch.tensor([1.0, -2.0, 0.5, 3.0])
    flat = acts["conv"].flatten(2)  # [2, 4, 9]
    dot = torch.einsum("bcp,c->bp", flat, v)
    cos = dot / (flat.norm(dim=1) + 1e-4) / (v.norm() + 1e-4)
    by_hand = (dot * cos.clamp_min(0.1) ** 2).mean(1)
    obj = o.direction("conv", v, cossim_power=2)
    assert torch.allclose(obj(acts), by_hand, atol=1e-5)
    assert obj.name == "conv:direction^2"


def test_cosine_scores_the_cosine_alone_as_lucent() -> None:
    acts = {"conv": torch.randn(3, 8, 5, 6) * 7}
    one_hot = torch.zeros(8)
    one_hot[5] = 1
    flat = acts["conv"].flatten(2)
    channel_cosine = (flat[:, 5] / flat.norm(dim=1)).mean(1)  # a one-hot direction: the channel's share of |act|
    obj = o.direction("conv", one_hot, cosine=True)
    assert torch.allclose(obj(acts), channel_cosine, atol=1e-4)
    assert obj.name == "conv:direction~cos" and obj.per_position
    # lucent's direction: torch's cosine similarity against the vector, averaged over positions
    v = torch.randn(2, 8)
    lucent = torch.stack([torch.nn.functional.cosine_similarity(acts["conv"][i], v[i][:, None, None], dim=0).mean()
                          for i in range(2)])
    assert torch.allclose(o.direction("conv", v, cosine=True)({"conv": acts["conv"][:2]}), lucent, atol=1e-4)
    # the size of the activations does not count: scaled acts score the same, and every score lies in [-1, 1]
    big = {"conv": acts["conv"] * 1000}
    assert torch.allclose(obj(big), obj(acts), atol=1e-4)
    scores = o.direction("conv", torch.randn(50, 8), cosine=True)({"conv": torch.randn(50, 8, 5, 6)},
                                                                 torch.arange(50))
    assert scores.abs().max() <= 1 and scores.abs().max() > 0.1


def test_direction_neuron_takes_cosine_at_its_position() -> None:
    acts = {"conv": torch.randn(2, 8, 5, 6)}
    v = torch.randn(8)
    at = acts["conv"][:, :, 4, 3]  # y=4, x=3
    expected = torch.nn.functional.cosine_similarity(at, v[None], dim=1)
    obj = o.direction_neuron("conv", v, x=3, y=4, cosine=True)
    assert torch.allclose(obj(acts), expected, atol=1e-4)
    assert obj.name == "conv:direction~cos@3,4"


def test_cosine_with_cossim_power_or_not_a_bool_is_refused() -> None:
    with pytest.raises(DreamlabError, match="give one of them"):
        o.direction("conv", torch.ones(8), cossim_power=1, cosine=True)
    with pytest.raises(DreamlabError, match="cosine must be True"):
        o.direction("conv", torch.ones(8), cosine="yes")


def test_a_direction_reads_vectors_and_token_sequences() -> None:
    v = torch.randn(6)
    fc = {"fc": torch.randn(2, 6)}  # [B, C]: one position
    assert torch.allclose(o.direction("fc", v)(fc), fc["fc"] @ v, atol=1e-5)
    tokens = {"enc": torch.randn(2, 6, 10)}  # capture hands token sequences over as [B, D, N]
    assert torch.allclose(o.direction("enc", v)(tokens), torch.einsum("bdn,d->bn", tokens["enc"], v).mean(1),
                          atol=1e-5)


@pytest.mark.parametrize("vectors, message", [
    (torch.zeros(8), "all zeros"),
    (torch.tensor([[1.0, 2.0], [0.0, 0.0]]), "row 1 of the directions is all zeros"),
    (torch.tensor([1.0, float("nan")]), "NaN or infinite"),
    (np.array([1e300, 1.0]), "beyond float32's range"),
    (torch.ones(2, 3, 4), "a vector [C] or a matrix [N, C]"),
    (torch.tensor([True, False]), "real numbers"),
    ("conv", "a vector of numbers"),
    ([], "a vector [C] or a matrix [N, C]"),
])
def test_bad_directions_are_one_line_errors(vectors: object, message: str) -> None:
    with pytest.raises(DreamlabError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        o.direction("conv", vectors)
    assert "\n" not in str(info.value)


def test_bad_cossim_power_and_name_are_refused() -> None:
    with pytest.raises(DreamlabError, match=r"cossim_power must be a number from 0 to 32 \(0: the plain dot "
                                            r"product; lucid uses 1 to 4\), got -1"):
        o.direction("conv", torch.ones(3), cossim_power=-1)
    # 0.1 ** 1e6 is 0 in float32: every position pointing away from the direction would score 0
    with pytest.raises(DreamlabError, match="cossim_power must be a number from 0 to 32"):
        o.direction("conv", torch.ones(3), cossim_power=1e6)
    assert o.direction("conv", torch.ones(3), cossim_power=32).name == "conv:direction^32"
    with pytest.raises(DreamlabError, match="without spaces or ':'"):
        o.direction("conv", torch.ones(3), name="a:b")


def test_the_channel_count_is_checked_against_the_layer() -> None:
    obj = o.direction("conv2", torch.ones(20))
    with pytest.raises(DreamlabError, match=r"the direction has 20 values but layer 'conv2' has 50 channels"):
        dreamlab.render("lenet-digits", obj, steps=1, device="cpu")


def test_a_rendered_direction_raises_its_score_and_one_hot_equals_the_channel_render() -> None:
    one_hot = torch.zeros(50)
    one_hot[3] = 1
    by_direction = dreamlab.render("lenet-digits", o.direction("conv2", one_hot), steps=16, device="cpu")
    by_channel = dreamlab.render("lenet-digits", "conv2:3", steps=16, device="cpu")
    assert torch.equal(by_direction.images, by_channel.images)
    mixed = dreamlab.render("lenet-digits", o.direction("conv2", torch.randn(2, 50, generator=torch.Generator()
                                                                               .manual_seed(0))),
                            steps=32, device="cpu")
    assert (mixed.history[-1] > mixed.history[0]).all()


def test_load_vectors_reads_npy_pt_and_text(tmp_path) -> None:
    matrix = np.arange(6, dtype=np.float32).reshape(2, 3) + 1
    np.save(tmp_path / "m.npy", matrix)
    torch.save(torch.from_numpy(matrix), tmp_path / "m.pt")
    np.savetxt(tmp_path / "m.csv", matrix, delimiter=",")
    (tmp_path / "column.txt").write_text("1\n2\n3\n")
    for name in ("m.npy", "m.pt", "m.csv"):
        assert torch.equal(load_vectors(tmp_path / name).float(), torch.from_numpy(matrix)), name
    assert load_vectors(tmp_path / "column.txt").tolist() == [1.0, 2.0, 3.0]  # one value per line: one vector


def test_load_vectors_refuses_other_files_in_one_line(tmp_path) -> None:
    (tmp_path / "v.json").write_text("[1, 2]")
    torch.save({"v": torch.ones(3)}, tmp_path / "d.pt")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    cases = [("v.json", "give a .npy, .pt, .txt, .csv file"), ("d.pt", "holds a dict, not numbers"),
             ("bad.npy", "cannot read directions from"), ("missing.npy", "no such file")]
    for name, message in cases:
        with pytest.raises(DreamlabError, match=message) as info:
            load_vectors(tmp_path / name)
        assert "\n" not in str(info.value)


def test_a_pt_file_torch_load_refuses_is_told_in_a_few_words(tmp_path) -> None:
    """torch.load's own message is a paragraph with terminal colour codes; its first line was cut at 160
    characters mid-sentence."""
    torch.save(np.ones(3, dtype=np.float32), tmp_path / "np.pt")  # a pickled NumPy array: not weights-only
    (tmp_path / "text.pt").write_text("not a checkpoint")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(DreamlabError, match=r"\(it holds a pickled numpy\.\S+, which torch\.load\(weights_only=True\) "
                                            r"does not open\); give a \.pt file holding a vector \[C\]"):
        load_vectors(tmp_path / "np.pt")  # (numpy 2 names numpy._core.multiarray._reconstruct)
    for name, why in [("text.pt", "torch.load raised UnpicklingError: the file is corrupt, truncated or not a "
                                  "PyTorch file"),
                      ("empty.pt", "torch.load raised EOFError: the file is corrupt, truncated or not a PyTorch "
                                   "file")]:
        with pytest.raises(DreamlabError) as info:
            load_vectors(tmp_path / name)
        assert str(info.value) == (f"cannot read directions from {str(tmp_path / name)!r} ({why}); give a .pt file "
                                   f"holding a vector [C] or a matrix [N, C]")
    with pytest.raises(DreamlabError) as info:
        load_vectors(tmp_path / "missing.pt")
    assert str(info.value) == (f"no such file: {str(tmp_path / 'missing.pt')!r}; give the .pt file holding the "
                               f"directions, a vector [C] or a matrix [N, C]")


def test_render_direction_from_the_command_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "pair.npy", np.eye(50, dtype=np.float32)[[3, 7]])
    assert main(["render", "conv2", "--model", "lenet-digits", "--direction", "pair.npy", "--steps", "4",
                 "--cossim-power", "1", "-o", "out"]) == 0
    written = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in written] == ["lenet-digits_conv2_pair_pow1_0.png", "lenet-digits_conv2_pair_pow1_1.png"]
    text = read_png_text(written[1])
    assert text["dreamlab:unit"] == "conv2:pair^1[1]" and text["dreamlab:objective"] == "conv2:pair^1[0-1]"
    assert text["dreamlab:direction_file"] == "pair.npy" and len(text["dreamlab:direction_sha256"]) == 16


def test_render_cosine_direction_from_the_command_line(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "pair.npy", np.eye(50, dtype=np.float32)[[3, 7]])
    assert main(["render", "conv2", "--model", "lenet-digits", "--direction", "pair.npy", "--steps", "4",
                 "--cosine", "-o", "out"]) == 0
    written = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in written] == ["lenet-digits_conv2_pair_cos_0.png", "lenet-digits_conv2_pair_cos_1.png"]
    text = read_png_text(written[1])
    assert text["dreamlab:unit"] == "conv2:pair~cos[1]" and -1 <= float(text["dreamlab:score"]) <= 1


@pytest.mark.parametrize("argv, message", [
    (["conv2:3", "--direction", "v.npy"], "OBJECTIVE is the layer the directions live in"),
    (["conv2", "--cossim-power", "1"], "--cossim-power applies to --direction FILE only"),
    (["conv2", "--cosine"], "--cosine applies to --direction FILE only"),
    (["conv2", "--direction", "v.npy", "--cosine", "--cossim-power", "1"], "give one of them"),
    (["conv2", "--direction", "short.npy"], "the direction has 20 values but layer 'conv2' has 50 channels"),
    (["conv2", "--direction", "v.npy", "--cossim-power", "-1"], "cossim_power must be a number from 0 to 32"),
])
def test_render_direction_bad_input_exits_with_one_line(tmp_path, monkeypatch, capsys, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "v.npy", np.ones(50, dtype=np.float32))
    np.save(tmp_path / "short.npy", np.ones(20, dtype=np.float32))
    assert main(["render", *argv, "--model", "lenet-digits", "--steps", "1"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and not list(tmp_path.glob("*.png"))


def test_a_direction_dreams_a_photo_in_tiles_like_in_one_piece() -> None:
    generator = torch.Generator().manual_seed(3)
    photo = torch.nn.functional.interpolate(torch.rand(1, 1, 12, 16, generator=generator), size=(200, 272),
                                            mode="bilinear", align_corners=False)[0]
    vector = torch.randn(50, generator=generator)
    whole = dreamlab.dream("lenet-digits", photo, o.direction("conv2", vector), octaves=2, steps=6, device="cpu",
                           tile=None)
    tiled = dreamlab.dream("lenet-digits", photo, o.direction("conv2", vector), octaves=2, steps=6, device="cpu",
                           tile=192, overlap=32)
    assert whole.final_score > whole.initial_score and (whole.image - photo).abs().mean() > 0.02
    gap = (whole.image - tiled.image).abs()  # float rounding, amplified by the steps' division by the mean gradient
    assert gap.max() <= 3 / 255 + 1e-6 and (gap > 1.5 / 255).float().mean() < 0.005
    # with the cosine the tiles still add up, but its floor and the division by small activation vectors make
    # some pixels sensitive to rounding: close on average, not pixel for pixel
    cos = [dreamlab.dream("lenet-digits", photo, o.direction("conv2", vector, cossim_power=1), octaves=2, steps=6,
                          device="cpu", tile=tile) for tile in (None, 256)]
    assert cos[0].final_score > cos[0].initial_score
    assert (cos[0].image - cos[1].image).abs().mean() < 0.005 < (cos[0].image - photo).abs().mean()
