"""`inceptionv1`: lucid's InceptionV1, the "inception5h" GoogLeNet of the Distill feature-visualization articles.

Not torchvision's GoogLeNet: other weights (trained by Google, released as TensorFlow's inception5h.zip), other
widths (mixed4a has 508 channels, inception4a 512) and 1008 classes. The architecture facts below (state-dict
names and shapes, TensorFlow 'SAME' padding amounts, the LRN constants, the input range) are those of lucent's
PyTorch port (lucent 0.1.8, lucent/modelzoo/inceptionv1/InceptionV1.py, converted by ProGamerGov), so that its
weights file `inception5h.pth` loads here unchanged (strict=True). dreamlab's own code: the forward is the same
function, checked against lucent's module with random weights (README, "Coming from lucid or lucent").

Addresses are lucid's layer names: `conv2d0`..`conv2d2` (after the ReLU), `maxpool0`, `localresponsenorm0`, ...,
`mixed3a`..`mixed5b` (the block's four branches concatenated, after the ReLU) and `mixed3a_pre_relu`..
`mixed5b_pre_relu` (the same before it: lucid's `mixed4a_pre_relu:476`); each conv keeps lucent's name
(`mixed4a_3x3_pre_relu_conv` is lucid's `mixed4a_3x3_pre_relu`). The output is lucid's `softmax2_pre_activation`
(the logits, `logit:N`); lucent's module returns their softmax.

Input: lucid's range [-117, 138] (an RGB image in [0, 255] minus 117), as lucent's renders feed it
(optvis/transform.py, preprocess_inceptionv1); the recipe's mean 117/255 and std 1/255 map [0, 1] images there.
"""
from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dreamlab.errors import CacheWriteError, DownloadError, WeightsError, first_line
from dreamlab.models.zoo.cache import cache_dir, check_cache_place

# the mixed blocks: name, input width, then the widths of 1x1, 3x3 bottleneck, 3x3, 5x5 bottleneck, 5x5 and
# pool reduce (lucent's InceptionV1.py; the block's width is 1x1 + 3x3 + 5x5 + pool reduce)
MIXED = (
    ("mixed3a", 192, 64, 96, 128, 16, 32, 32),
    ("mixed3b", 256, 128, 128, 192, 32, 96, 64),
    ("mixed4a", 480, 192, 96, 204, 16, 48, 64),
    ("mixed4b", 508, 160, 112, 224, 24, 64, 64),
    ("mixed4c", 512, 128, 128, 256, 24, 64, 64),
    ("mixed4d", 512, 112, 144, 288, 32, 64, 64),
    ("mixed4e", 528, 256, 160, 320, 32, 128, 128),
    ("mixed5a", 832, 256, 160, 320, 48, 128, 128),
    ("mixed5b", 832, 384, 192, 384, 48, 128, 128),
)
# the stride-2 max pools between stages, named as lucid names them, before the block they feed
STRIDED_POOLS = {"mixed4a": "maxpool4", "mixed5a": "maxpool10"}
# inception5h's outputs (lucent's final Linear, 1024 -> 1008); its class order is not torchvision's: the recipe
# names them from inception5h's own label file
CLASSES = 1008
# TensorFlow's LocalResponseNormalization as lucent writes it for torch: depth radius 4 (size 9), alpha 1e-4 as
# float32 prints it, beta 0.5, bias 1
LRN = dict(size=9, alpha=9.99999974738e-05, beta=0.5, k=1.0)
# TensorFlow 'SAME' max pooling as lucent pads it: the stride-2 3x3 pools pad one -inf column and row on the right
# and bottom only (lucent's fixed amounts, TensorFlow's at even input sizes such as 224), which is a pool with
# ceil_mode (the last window is cut at the edge: the same windows and outputs at every size); the stride-1 pools
# of the mixed blocks pad one on every side. conv2d0 (7x7, stride 2) pads 2 left and top, 3 right and bottom.
CONV0_PAD = (2, 3, 2, 3)
# where lucent's InceptionV1(pretrained=True) downloads the weights from (lucent's model_urls)
WEIGHTS_URL = "https://github.com/ProGamerGov/pytorch-old-tensorflow-models/raw/master/inception5h.pth"
STATE_FILE = "inception5h.pth"  # its name in the cache folder


class PaddedMaxPool(nn.Module):
    """A 3x3 max pool whose padding is never the maximum (TensorFlow's 'SAME' pooling): stride 2 pads the right and
    bottom by one, stride 1 every side."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            return F.max_pool2d(x, 3, 1, padding=1)
        return F.max_pool2d(x, 3, self.stride, ceil_mode=True)

    def extra_repr(self) -> str:
        return f"kernel_size=3, stride={self.stride}, 'SAME'"


class LocalResponseNorm(nn.Module):
    """Across-channel local response normalization, the function torch's nn.LocalResponseNorm computes:
    x / (k + alpha / size * sum of x^2 over `size` neighbouring channels)^beta.

    The windows' sums are one 1x1 convolution of x^2 with a band of ones (C x C), where torch pools a padded 5-D
    copy in 3-D: the same values to float rounding (relative 2.4e-7), and about 5 to 7 times faster forward and
    backward on a CPU (64 and 192 channels at 56x56, 2026-12-06); the two LRNs took 38% of a render step of
    `mixed4a` with torch's.
    """

    def __init__(self, size: int, alpha: float, beta: float, k: float):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def _band(self, channels: int, like: Tensor) -> Tensor:
        index = torch.arange(channels, device=like.device)
        offset = index[None, :] - index[:, None]  # input channel minus output channel
        inside = (offset >= -(self.size // 2)) & (offset <= (self.size - 1) // 2)  # torch's window (4 and 4 for 9)
        return inside.to(like.dtype)[:, :, None, None]

    def forward(self, x: Tensor) -> Tensor:
        squares = x * x
        window = F.conv2d(squares, self._band(x.shape[1], squares))
        return x * (self.k + window * (self.alpha / self.size)).pow(-self.beta)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class Concat(nn.Module):
    """The branches of a mixed block along the channels, so that the concatenation is an addressable layer."""

    def forward(self, *branches: Tensor) -> Tensor:
        return torch.cat(branches, 1)


def branch_channels(branch: str) -> tuple[str, int, int] | None:
    """Where lucent's branch after its ReLU (`mixed4a_3x3`) lies in its block here: (block, first channel, width),
    or None for another name. The block concatenates 1x1, 3x3, 5x5 and pool reduce in that order."""
    block, _, part = branch.partition("_")
    row = next((r for r in MIXED if r[0] == block), None)
    if row is None:
        return None
    _, _, c1, _, c3, _, c5, cp = row
    starts = {"1x1": (0, c1), "3x3": (c1, c3), "5x5": (c1 + c3, c5), "pool_reduce": (c1 + c3 + c5, cp)}
    return (block, *starts[part]) if part in starts else None


def _conv(c_in: int, c_out: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, padding=k // 2)  # 'SAME' for odd kernels at stride 1: k // 2 on every side


class InceptionV1(nn.Module):
    """lucid's InceptionV1 with lucent's parameter names; forward(x in [-117, 138]) -> 1008 logits."""

    weights_hint = ("inceptionv1 reads lucent's inception5h.pth (keys such as conv2d0_pre_relu_conv.weight); "
                    "torchvision's GoogLeNet weights go with --model googlenet")
    weights_fetch = "dreamlab fetch inceptionv1"  # named where a --weights file is missing (loading._build_model)

    def __init__(self):
        super().__init__()
        # registered in the order of the forward, so that the layer table reads from input to output
        self.conv2d0_pre_relu_conv = nn.Conv2d(3, 64, 7, stride=2)
        self.conv2d0 = nn.ReLU()
        self.maxpool0 = PaddedMaxPool(2)
        self.localresponsenorm0 = LocalResponseNorm(**LRN)
        self.conv2d1_pre_relu_conv = _conv(64, 64, 1)
        self.conv2d1 = nn.ReLU()
        self.conv2d2_pre_relu_conv = _conv(64, 192, 3)
        self.conv2d2 = nn.ReLU()
        self.localresponsenorm1 = LocalResponseNorm(**LRN)
        self.maxpool1 = PaddedMaxPool(2)
        for name, c_in, c1, c3r, c3, c5r, c5, cp in MIXED:
            if name in STRIDED_POOLS:
                self.add_module(STRIDED_POOLS[name], PaddedMaxPool(2))
            self.add_module(f"{name}_1x1_pre_relu_conv", _conv(c_in, c1, 1))
            self.add_module(f"{name}_3x3_bottleneck_pre_relu_conv", _conv(c_in, c3r, 1))
            self.add_module(f"{name}_3x3_bottleneck", nn.ReLU())
            self.add_module(f"{name}_3x3_pre_relu_conv", _conv(c3r, c3, 3))
            self.add_module(f"{name}_5x5_bottleneck_pre_relu_conv", _conv(c_in, c5r, 1))
            self.add_module(f"{name}_5x5_bottleneck", nn.ReLU())
            self.add_module(f"{name}_5x5_pre_relu_conv", _conv(c5r, c5, 5))
            self.add_module(f"{name}_pool", PaddedMaxPool(1))
            self.add_module(f"{name}_pool_reduce_pre_relu_conv", _conv(c_in, cp, 1))
            self.add_module(f"{name}_pre_relu", Concat())
            # one ReLU on the concatenation: the same values as lucent's ReLU per branch, and lucid's mixed4a
            self.add_module(name, nn.ReLU())
        # global average: lucent pools 7x7, the whole of mixed5b at the 224-px input it was trained on; global
        # pooling gives the same there and a [B, 1024] vector at any other size
        self.avgpool0 = nn.AdaptiveAvgPool2d(1)
        self.softmax2_pre_activation_matmul = nn.Linear(1024, CLASSES)

    def _mixed(self, name: str, x: Tensor) -> Tensor:
        part = self.get_submodule  # the block's modules by name, run branch after branch (the layer table's order)
        branch1 = part(f"{name}_1x1_pre_relu_conv")(x)
        branch3 = part(f"{name}_3x3_bottleneck")(part(f"{name}_3x3_bottleneck_pre_relu_conv")(x))
        branch3 = part(f"{name}_3x3_pre_relu_conv")(branch3)
        branch5 = part(f"{name}_5x5_bottleneck")(part(f"{name}_5x5_bottleneck_pre_relu_conv")(x))
        branch5 = part(f"{name}_5x5_pre_relu_conv")(branch5)
        pool = part(f"{name}_pool_reduce_pre_relu_conv")(part(f"{name}_pool")(x))
        return part(name)(part(f"{name}_pre_relu")(branch1, branch3, branch5, pool))

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv2d0(self.conv2d0_pre_relu_conv(F.pad(x, CONV0_PAD)))
        x = self.localresponsenorm0(self.maxpool0(x))
        x = self.conv2d1(self.conv2d1_pre_relu_conv(x))
        x = self.conv2d2(self.conv2d2_pre_relu_conv(x))
        x = self.maxpool1(self.localresponsenorm1(x))
        for name, *_ in MIXED:
            if name in STRIDED_POOLS:
                x = self.get_submodule(STRIDED_POOLS[name])(x)
            x = self._mixed(name, x)
        return self.softmax2_pre_activation_matmul(self.avgpool0(x).flatten(1))


def inceptionv1(weights: object = "default") -> InceptionV1:
    """The recipe's builder. `weights`: 'default' (the cache file `dreamlab fetch inceptionv1` fills) or None
    (random init); a weights file (--weights PATH) is loaded by dreamlab's loader after the build. The cache's
    file is named in `weights_file`, which load_model reports as the weights read."""
    model = InceptionV1()
    if weights is None or str(weights).lower() == "none":
        return model
    if str(weights) != "default":
        raise WeightsError(f"inceptionv1 weights must be 'default' or 'none' (or a file: weights=PATH, --weights "
                           f"PATH, such as lucent's inception5h.pth), got {weights!r}")
    path = weights_path()
    if not path.is_file():
        check_cache_place(path, "inceptionv1")  # a file or folder in the way: fetch could not fill the cache
        raise WeightsError(f"inceptionv1 weights are not in the cache ({path}); run `dreamlab fetch inceptionv1` "
                           f"once (it downloads lucent's inception5h.pth), or give that file with --weights PATH, "
                           f"or use --weights none for random init")
    _load_cached(model, path)
    model.weights_file = str(path)  # not pinned by a sha256: the provenance records the file's (loading.py)
    return model


# --- the weights cache ----------------------------------------------------------------------------------------

def weights_path() -> Path:
    """Where `dreamlab fetch inceptionv1` puts inception5h.pth (in the cache folder)."""
    return cache_dir() / STATE_FILE


def _load_cached(model: InceptionV1, path: Path) -> None:
    from dreamlab.models.loading import load_state_dict_file  # loading imports the zoo's builders

    try:
        load_state_dict_file(model, path, "inceptionv1")
    except WeightsError as exc:
        raise WeightsError(f"the cached inceptionv1 weights {str(path)!r} cannot be used ({exc}); run `dreamlab "
                           f"fetch inceptionv1 --force` to fetch them again") from None


def _download(dest: Path) -> None:
    """WEIGHTS_URL into `dest`; no network, or a server that fails, is a DownloadError of one line."""
    def failed(exc: OSError) -> DownloadError:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or first_line(exc)
        return DownloadError(f"could not download the inceptionv1 weights from {WEIGHTS_URL} ({reason}); fetch "
                             f"needs the network, or download inception5h.pth elsewhere and give it with "
                             f"`dreamlab fetch inceptionv1 --file PATH` (or --weights PATH on each command)")

    with open(dest, "wb") as out:
        try:
            response = urllib.request.urlopen(WEIGHTS_URL, timeout=60)
        except OSError as exc:  # urllib's URLError and HTTPError, socket errors
            raise failed(exc) from None
        with response:
            while True:
                try:
                    chunk = response.read(1 << 20)
                except OSError as exc:  # the connection dropped mid-file
                    raise failed(exc) from None
                if not chunk:
                    break
                out.write(chunk)


def fetch_inceptionv1(force: bool = False, source: Path | None = None) -> Path:
    """Fill the cache with lucent's inception5h.pth (a filled one is kept unless `force`, as with a download):
    downloaded from WEIGHTS_URL, or copied from `source`; the file's keys and shapes are checked before it takes
    the cache's name. Not pinned by a sha256: the file could not be downloaded where this was written, so only its
    layout is checked."""
    target = weights_path()
    if target.is_file() and not force:
        _load_cached(InceptionV1(), target)  # a corrupt file is refused, naming --force, rather than reported
        return target
    check_cache_place(target, "inceptionv1")
    from dreamlab.models.loading import load_state_dict_file  # loading imports the zoo's builders

    if source is not None:
        load_state_dict_file(InceptionV1(), source, "inceptionv1")  # its errors name the user's file
    partial = target.with_suffix(".part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if source is None:
                _download(partial)
            else:
                shutil.copyfile(source, partial)
        except OSError as exc:  # a full disk, a read-only cache
            raise CacheWriteError(f"cannot write the inceptionv1 weights to {str(target)!r} ({exc.strerror or exc}); "
                               f"free space or point DREAMLAB_CACHE at a writable folder, then fetch again") from None
        if source is None:
            try:
                load_state_dict_file(InceptionV1(), partial, "inceptionv1")
            except WeightsError as exc:
                raise WeightsError(f"the file downloaded from {WEIGHTS_URL} is not lucent's inception5h.pth "
                                   f"({exc}); nothing was written to the cache") from None
        partial.replace(target)
    finally:
        if partial.is_file():  # a failed fetch never leaves a half-file behind
            partial.unlink()
    return target


__all__ = ["InceptionV1", "inceptionv1", "fetch_inceptionv1", "weights_path", "branch_channels", "MIXED", "CLASSES",
           "WEIGHTS_URL", "PaddedMaxPool", "LocalResponseNorm", "Concat"]
