"""Images in and out: PNGs with provenance text chunks, grids, safe file names, atomic writes.

>>> save_png(torch.rand(3, 64, 64), "unit.png", {"dreamlab:objective": "inception4c:97"})  # doctest: +SKIP
PosixPath('unit.png')
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import tempfile
import unicodedata
import warnings
from collections.abc import Mapping, Sequence
from io import BytesIO
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin
from torch import Tensor

from dreamlab.errors import DreamlabError, first_line, permission_denied


def file_digest(path: str | os.PathLike) -> str:
    """The first 16 hex digits of a file's sha256: what provenance records to tell input files apart. Read in
    chunks: a weights file can be 500 MB."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def cover(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Images [B, C, H, W] scaled (bilinear, antialiased) by one factor so that they cover `size` (height, width):
    at least the target on both sides, the side that sets the scale exact; returned as they are when they
    already have that size."""
    height, width = images.shape[-2:]
    target_h, target_w = size
    scale = max(target_h / height, target_w / width)
    scaled = (max(target_h, round(height * scale)), max(target_w, round(width * scale)))
    if scaled == (height, width):
        return images
    return torch.nn.functional.interpolate(images, size=scaled, mode="bilinear", antialias=True,
                                           align_corners=False)


def centre_crop(images: Tensor, size: tuple[int, int]) -> Tensor:
    """The centre (height, width) `size` crop of images [B, C, H, W]."""
    top, left = (images.shape[-2] - size[0]) // 2, (images.shape[-1] - size[1]) // 2
    return images[..., top:top + size[0], left:left + size[1]]


PIL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # channels -> PIL mode: grey or colour, each with an alpha last


def to_pil(image: Tensor) -> Image.Image:
    """[C, H, W] in [0, 1] (C = 1 or 3, or 2 or 4 with an alpha channel last) to a PIL image ('L', 'RGB', 'LA' or
    'RGBA')."""
    if image.dim() != 3 or image.shape[0] not in PIL_MODES:
        raise ValueError(f"expected an image [1|2|3|4, H, W], got shape {list(image.shape)}")
    array = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    if image.shape[0] == 1:
        return Image.fromarray(array[0].numpy(), mode="L")
    return Image.fromarray(array.permute(1, 2, 0).contiguous().numpy(), mode=PIL_MODES[image.shape[0]])


def _png_info(text: Mapping[str, str] | None) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, valid_utf8(str(value)))
    return info


def valid_utf8(text: str) -> str:
    """`text` made encodable as UTF-8, as a PNG text chunk must be: a file name's undecodable bytes (which Python
    holds as surrogates, '\\udcfe') become escapes ('\\\\xfe'), so provenance that names such a file is still saved.

    >>> valid_utf8("caf\\udcc3.png")
    'caf\\\\xc3.png'
    """
    try:
        raw = text.encode("utf-8", "surrogateescape")  # os.fsdecode's surrogates back to the file name's bytes
    except UnicodeEncodeError:  # a surrogate that is not an undecodable byte
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def png_bytes(image: Tensor, text: Mapping[str, str] | None = None) -> bytes:
    """Encode an image as PNG with `text` as tEXt/iTXt chunks (deterministic: no timestamps)."""
    buffer = BytesIO()
    to_pil(image).save(buffer, format="PNG", pnginfo=_png_info(text))
    return buffer.getvalue()


def atomic_write_bytes(path: Path | str, data: bytes, *, fsync: bool = True) -> Path:
    """Write `data` to `path` all-or-nothing: a temp file in the same folder, then os.replace.

    Readers never see a half-written file, and an interrupted run leaves the old file (or none) in place.
    Parent folders are created. The file gets the usual mode (0o666 less the umask), not mkstemp's 0o600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name[:80]}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:  # else a crash right after the rename can leave an empty file under the final name
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp)):  # name the user's path, not the temp
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None  # keep the reason
        raise
    return path


def atomic_write_text(path: Path | str, text: str, *, encoding: str = "utf-8", fsync: bool = True) -> Path:
    """atomic_write_bytes for text."""
    return atomic_write_bytes(path, text.encode(encoding), fsync=fsync)


def save_png(image: Tensor, path: str | Path, text: Mapping[str, str] | None = None) -> Path:
    """Save one image [C, H, W] in [0, 1] as a PNG with provenance text chunks (atomically)."""
    return atomic_write_bytes(path, png_bytes(image, text))


def set_png_text(path: str | Path, text: Mapping[str, str]) -> Path:
    """Replace the text chunks of a PNG by `text`, keeping its pixels (atomically): how a file written before
    its provenance was known gets it."""
    with Image.open(path) as img:
        img.load()
        buffer = BytesIO()
        img.save(buffer, format="PNG", pnginfo=_png_info(text))
    return atomic_write_bytes(path, buffer.getvalue())


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the IEND chunk every complete PNG ends with


def is_whole_png(path: str | Path) -> bool:
    """Whether `path` is a PNG that was written to its end (a truncated copy lacks the closing IEND chunk);
    reads 12 bytes, so a resume can check every unit."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                return False
            f.seek(-len(_PNG_END), os.SEEK_END)
            return f.read() == _PNG_END
    except OSError:
        return False


def read_png_text(path: str | Path) -> dict[str, str]:
    """The text chunks of a PNG (what `save_png` stored)."""
    with Image.open(path) as img:
        img.load()
        return dict(img.text)


def grid(images: Tensor, columns: int | None = None, padding: int = 2,
         fill: float | tuple[float, float, float] = 1.0) -> Tensor:
    """Tile images [B, C, H, W] into one image [C, H', W'] (about square unless `columns` is given); `fill`, the
    padding's grey level or RGB colour (grey images then become RGB). Images with an alpha channel (2 or 4
    channels) keep it, and the padding is opaque."""
    colour = torch.as_tensor(fill, dtype=torch.float32).reshape(-1, 1, 1)
    if len(colour) == 3 and images.shape[1] in (1, 2):
        images = torch.cat([images[:, :1].expand(-1, 3, -1, -1), images[:, 1:]], 1)
    if images.shape[1] in (2, 4):  # the padding's colour, then an opaque alpha
        colour = torch.cat([colour.expand(images.shape[1] - 1, 1, 1), torch.ones(1, 1, 1)])
    b, c, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(b))
    rows = math.ceil(b / columns)
    out = colour.expand(c, rows * (h + padding) + padding, columns * (w + padding) + padding).clone()
    for i, img in enumerate(images):
        r, col = divmod(i, columns)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        out[:, top:top + h, left:left + w] = img
    return out


def safe_name(text: str, limit: int = 96) -> str:
    """A file-name-safe version of a label: 'inception4c:97' -> 'inception4c_97'."""
    name = re.sub(r"[^A-Za-z0-9.+-]+", "_", ascii_letters(text).replace("@", "_at_"))
    return _shorten(name.strip("._"), text, limit)


def ascii_letters(text: str) -> str:
    """`text` with accented letters as their base letters ('café' -> 'cafe'); other non-ASCII characters go."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _shorten(name: str, text: str, limit: int) -> str:
    """`name` cut to `limit` characters, ending in a hash of the whole `text` when cut (so cut names differ)."""
    if len(name) > limit:
        name = name[:limit - 9] + "_" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return name or "image"


# How a unit's label reads in a file name. ':' before a unit becomes '_' as in safe_name; the operators and a
# --diversity image's number get marks of their own, so that 'a:3*b:2' and 'a:3/b:2', or 'conv2 #1' (the first
# diversity image of conv2) and 'conv2:1', name different files.
_LABEL_MARKS = {"*": "_x_", "/": "_over_", "^": "_pow", "@": "_at_"}
_COPY = re.compile(r"(.*) #(\d+)")  # 'conv2:3 #2': image 2 of conv2:3 (optvis.diversity.repeat_units)


def label_name(label: str, limit: int = 96) -> str:
    """The file-name form of a unit's label: 'inception4c:97' -> 'inception4c_97', 'conv2:3 #2' ->
    'conv2_3_div2', 'a:3*b:2' -> 'a_3_x_b_2', 'a:3/b:2' -> 'a_3_over_b_2', 'a:pair^1[0]' (a direction) -> 'a_pair_pow1_0'.

    >>> label_name("inception4c:97@7,7")
    'inception4c_97_at_7_7'
    """
    copy = _COPY.fullmatch(label)
    text = f"{copy[1]} div{copy[2]}" if copy else label
    text = re.sub(r"[*/^@]", lambda m: _LABEL_MARKS[m[0]], ascii_letters(text))
    return _shorten(re.sub(r"[^A-Za-z0-9.+()-]+", "_", text).strip("._"), label, limit)


def distinct_paths(paths: Sequence[Path]) -> list[Path]:
    """`paths` with each repeat renamed NAME_dup2.png, NAME_dup3.png, ... (compared ignoring case, as macOS and
    Windows do), so that one run never overwrites a file it wrote itself."""
    seen: set[str] = set()
    out = []
    for path in paths:
        candidate, n = path, 1
        while str(candidate).lower() in seen:
            n += 1
            candidate = path.with_name(f"{path.stem}_dup{n}{path.suffix}")
        seen.add(str(candidate).lower())
        out.append(candidate)
    return out


def output_paths(model: str, labels: Sequence[str], out: str | Path | None) -> list[Path]:
    """Where each unit's PNG goes: `out` itself for one unit, else descriptive names (in `out` if a folder),
    never the same path twice."""
    names = [f"{safe_name(model)}_{label_name(label)}.png" for label in labels]
    if out is None:
        return distinct_paths([Path(n) for n in names])
    out = Path(out)
    if len(labels) == 1 and out.suffix.lower() == ".png":
        return [out]
    if out.suffix.lower() == ".png":  # several units and a file name: stem_label.png beside it
        return distinct_paths([out.with_name(f"{out.stem}_{label_name(label)}.png") for label in labels])
    return distinct_paths([out / n for n in names])


MAX_IMAGE_PIXELS = 64 * 2 ** 20  # 8192 x 8192: far above any render size, far below a decompression bomb
ALPHA_BACKGROUND = 0.5  # transparent pixels become this grey (the renders' neutral start level)


def load_image(path: str | Path, background: float = ALPHA_BACKGROUND, name: str = "image") -> Tensor:
    """A PNG/JPEG from disk as [C, H, W] in [0, 1]: RGB, or one channel for greyscale.

    The image is turned as its EXIF orientation says (phone photos are stored sideways), so it has the shape
    a viewer shows. 16-bit images are scaled (65535 is white), not clipped. Transparency is composited over a
    grey of level `background`, so a transparent region reads as neutral rather than as whatever colour it
    happens to hold. Images of more than 64 Mpixels (8192x8192) are refused before they are decoded. A sample
    name (china, flower: scikit-learn's photos), as a plain string, reads that photo, as every command's photo
    argument does, unless a file of that name is in the current folder (`is_sample_photo`); a Path is always a
    file. `name` is what errors call the file ('image', 'guide').
    """
    if is_sample_photo(path):
        return sample_photo(path, f"{name} {path!r}")
    try:
        with warnings.catch_warnings():
            # Pillow warns of sizes above its own limit while opening; the size is checked and said below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
        with img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DreamlabError(f"{name} {str(path)!r} is {width}x{height} pixels, more than dreamlab reads "
                                    f"(64 Mpixels, 8192x8192); resize it first")
            img.load()
            ImageOps.exif_transpose(img, in_place=True)
            return _image_tensor(img, background, f"{name} {str(path)!r}")
    except Image.DecompressionBombError:  # PIL refuses these sizes itself while reading the header
        raise DreamlabError(f"{name} {str(path)!r} has more pixels than dreamlab reads (64 Mpixels; it may be a "
                            f"decompression bomb); resize it first") from None
    except FileNotFoundError:  # said as read_photo says it: a sample name is the other thing it takes
        raise _no_such_file(name, path) from None
    except PermissionError:
        raise permission_denied(name, path) from None
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises SyntaxError for some broken headers
        reason = getattr(exc, "strerror", None) or exc
        raise DreamlabError(f"cannot read {name} {str(path)!r}: {reason}; give a PNG or JPEG file") from None


def _image_tensor(img: Image.Image, background: float, what: str = "image") -> Tensor:
    """`img` as [C, H, W] in [0, 1]; a 32-bit integer or float image (a TIFF) whose values do not fit that
    scale is refused, naming `what`, rather than clipped to black or white."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit greyscale PNG; "I" also 32-bit TIFFs
        array = np.asarray(img).astype(np.float64)
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise DreamlabError(f"{what} is a 32-bit integer image with values from {array.min():g} to "
                                f"{array.max():g}; dreamlab reads 8- and 16-bit values (0-65535): save it as an "
                                f"8- or 16-bit PNG")
        return torch.from_numpy(array / 65535.0).float()[None]
    if img.mode == "F":  # a float TIFF: read as it is, so values must already be in [0, 1]
        array = np.asarray(img).astype(np.float32)
        if not np.isfinite(array).all():
            raise DreamlabError(f"{what} has NaN or infinite values; give finite values in [0, 1]")
        if array.size and (array.min() < 0 or array.max() > 1):
            low, high = _visible(float(array.min()), 0.0), _visible(float(array.max()), 1.0)
            raise DreamlabError(f"{what} is a floating-point image with values from {low} to {high}, outside [0, 1]; "
                                f"scale it to [0, 1] (divide 0-255 values by 255), or save it as an 8- or 16-bit PNG")
        return torch.from_numpy(array)[None]
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    grey = img.mode in ("1", "L", "LA", "La") or (img.mode == "P" and _palette_is_grey(img))
    if has_alpha:
        rgba = torch.from_numpy(np.asarray(img.convert("RGBA")).copy()).permute(2, 0, 1).float() / 255
        alpha = rgba[3:]
        image = rgba[:3] * alpha + background * (1 - alpha)
        return image[:1] if grey else image
    array = torch.from_numpy(np.asarray(img.convert("L" if grey else "RGB")).copy()).float() / 255
    return array[None] if grey else array.permute(2, 0, 1)


def match_channels(images: Tensor, channels: int) -> Tensor:
    """Images [..., C, H, W] with C made `channels`: RGB averaged to grey for a 1-channel model, grey repeated for
    a 3-channel one; any other count is left as it is, for the caller to refuse.

    >>> match_channels(torch.ones(3, 4, 4), 1).shape
    torch.Size([1, 4, 4])
    """
    c = images.shape[-3]
    if c == 3 and channels == 1:
        return images.mean(-3, keepdim=True)
    if c == 1 and channels == 3:
        return images.expand(*images.shape[:-3], 3, *images.shape[-2:])
    return images


def shape_hint(dims: list[int], name: str) -> str:
    """What to pass instead, for the shapes of a batch, of NumPy/PIL's channels-last layout and of RGBA: the
    expression that makes [C,H,W] of them ('' for other shapes)."""
    expr, what = name, []
    if len(dims) == 4:
        what.append("a batch of one" if dims[0] == 1 else f"a batch of {dims[0]} (one photo at a time)")
        dims, expr = dims[1:], f"{name}[0]"
    if len(dims) == 3 and dims[0] not in (1, 3, 4) and dims[-1] in (1, 3, 4):
        what.append("channels last (NumPy/PIL's layout)")
        dims, expr = [dims[2], *dims[:2]], f"{expr}.permute(2, 0, 1)"
    if len(dims) == 3 and dims[0] == 4:
        what.append("4 channels (RGBA: the alpha channel is not read)")
        dims, expr = [3, *dims[1:]], f"{expr}[:3]"
    if not what or len(dims) != 3 or dims[0] not in (1, 3):
        return ""
    return f"; {', '.join(what)}: pass {expr}"


def _palette_is_grey(img: Image.Image) -> bool:
    colours = np.asarray(img.convert("RGB"))
    return bool((colours[..., 0] == colours[..., 1]).all() and (colours[..., 1] == colours[..., 2]).all())


def check_writable(path: str | Path, what: str = "output", folder: bool | None = None) -> None:
    """Refuse, before any work, an output path that cannot be written (read-only place, a file in the way).

    `folder`: True when `path` is a folder to write into, False when it is a file, None to go by its suffix (a
    name with a suffix is a file). Probes with a temporary file in the nearest existing folder: permission bits
    alone miss read-only mounts.
    """
    path = Path(path)
    by_suffix = folder is None
    folder = not path.suffix if folder is None else folder
    if not folder and path.is_dir():
        raise DreamlabError(f"{what} {str(path)!r} is a folder; give a file name or another path")
    if folder and path.exists() and not path.is_dir():
        kind = "a file" if path.is_file() else "a device or other special file"  # -o /dev/null
        why = " (a name without a suffix is a folder)" if by_suffix else ""
        raise DreamlabError(f"cannot write {what} {str(path)!r}: it is {kind}, not a folder{why}; choose another path")
    existing = path if folder else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DreamlabError(f"cannot write {what} {str(path)!r}: {str(existing)!r} is a file, not a folder; "
                            f"choose another path")
    try:
        fd, probe = tempfile.mkstemp(prefix=".dreamlab-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise DreamlabError(f"cannot write {what} {str(path)!r}: {exc.strerror or exc}; choose a writable "
                            f"place") from None


def check_not_an_input(path: str | Path, reads: Sequence[object], what: str = "output") -> None:
    """Refuse, before any work, an output file that is one of the files the command reads (`reads`: photo paths;
    sample names, tensors and None are skipped): writing it would replace the user's photo."""
    path = Path(path)
    if not path.is_file():
        return
    for source in reads:
        if source is None or isinstance(source, Tensor) or is_sample_photo(source):
            continue
        if Path(source).is_file() and os.path.samefile(source, path):
            raise DreamlabError(f"{what} {str(path)!r} is the photo this command reads ({str(source)!r}), which it "
                                f"would replace; give another output path")


def check_output_file(path: str | Path, suffixes: Sequence[str] = (".png",), what: str = "output",
                      reads: Sequence[object] = ()) -> Path:
    """`path` as a Path, refused before any work unless it ends in one of `suffixes` and can be written, and is
    none of the photos the command `reads`.

    >>> check_output_file("maps.jpg")
    Traceback (most recent call last):
    dreamlab.errors.DreamlabError: output 'maps.jpg' would not be a .png file; give a name ending in .png
    """
    path = Path(path)
    if path.suffix.lower() not in suffixes and not path.is_dir():
        raise DreamlabError(f"{what} {str(path)!r} would not be a {' or '.join(suffixes)} file; give a name "
                            f"ending in {' or '.join(suffixes)}")
    check_writable(path, what, folder=False)
    check_not_an_input(path, reads, what)
    return path


SAMPLE_PHOTOS = ("china", "flower")  # the photos that ship inside scikit-learn (no download)


def is_sample_photo(source: object) -> bool:
    """`source` means one of scikit-learn's sample photos: a plain string that is exactly 'china' or 'flower', and
    no file of that name is in the current folder. A Path always means a file (Path('./china') is Path('china'),
    which must not read as the sample)."""
    return isinstance(source, str) and source in SAMPLE_PHOTOS and not Path(source).exists()


def sample_photo(name: str, needed_for: str) -> Tensor:
    """scikit-learn's sample photo 'china' or 'flower' as [3, H, W] in [0, 1].

    `needed_for` completes the error line when scikit-learn is missing ("--image china needs ...").
    """
    try:
        from sklearn.datasets import load_sample_image
    except ImportError:
        raise DreamlabError(f"{needed_for} needs scikit-learn's sample photos: pip install 'dreamlab[digits]'"
                            ) from None
    return torch.from_numpy(load_sample_image(f"{name}.jpg").copy()).permute(2, 0, 1).float() / 255


IMAGE_FORMS = "a torch tensor [C, H, W] or [B, C, H, W] in [0, 1]"


def check_image(value: object, name: str = "image") -> Tensor:
    """`value` if it is a float tensor of finite values in [0, 1]; anything else is refused naming `name`."""
    if not isinstance(value, Tensor):
        convert = "torch.from_numpy(array)" if type(value).__module__ == "numpy" else "torch.tensor(...)"
        raise DreamlabError(f"{name} must be {IMAGE_FORMS}, got {type(value).__name__}; convert it with {convert} "
                            f"(values in [0, 1]), or read a file with dreamlab.io.load_image")
    if value.dtype == torch.uint8:
        raise DreamlabError(f"{name} is a uint8 tensor (0-255) and images are in [0, 1]; divide it by 255 "
                            f"({name}.float() / 255)")
    if not value.is_floating_point():
        raise DreamlabError(f"{name} has dtype {value.dtype}; images are float tensors in [0, 1] (divide 0-255 "
                            f"values by 255)")
    if value.numel() == 0:
        raise DreamlabError(f"{name} is empty (shape {list(value.shape)}); give {IMAGE_FORMS}")
    if value.device.type == "meta":
        raise DreamlabError(f"{name} is a tensor on the 'meta' device, which holds a shape but no values; give one "
                            f"with its pixels (on cpu or cuda)")
    values = value.detach()
    if not bool(torch.isfinite(values).all()):
        raise DreamlabError(f"{name} has NaN or infinite values; give finite values in [0, 1]")
    low, high = (float(v) for v in torch.aminmax(values.float()))
    if low < 0 or high > 1:
        shown_low, shown_high = _visible(low, 0.0), _visible(high, 1.0)
        beyond = [f"the min {shown_low} is below 0"] if low < 0 else []
        beyond += [f"the max {shown_high} is above 1"] if high > 1 else []
        if _looks_0_255(values, low, high):
            advice = "they look like 0-255 values: divide them by 255"
        elif low >= 0 and high > 2:  # far past an overshoot, and without a normalization's negatives
            advice = "scale them into [0, 1], e.g. (x - x.min()) / (x.max() - x.min())"
        else:
            advice = ("clamp them with .clamp(0, 1) if a resize or a blend overshot; if the image was normalized "
                      "with a mean and std, give it from before that (dreamlab normalizes for the model)")
        raise DreamlabError(f"{name} has values from {shown_low} to {shown_high}, outside [0, 1] "
                            f"({' and '.join(beyond)}); {advice}")
    return value


# a max above 10 is past what an overshoot or a mean/std normalization (ImageNet's reaches about 2.6) makes; a max
# below it still reads as 0-255 data when every value is a whole number (a dark photo)
LOOKS_0_255_ABOVE = 10.0


def _looks_0_255(values: Tensor, low: float, high: float) -> bool:
    """Whether values outside [0, 1] are likely 0-255 pixels, so that dividing by 255 is the advice to give (a
    [0, 1] image scaled by 3 is not)."""
    if low < 0 or not 2 < high <= 255:
        return False
    return high > LOOKS_0_255_ABOVE or bool(torch.equal(values, values.round()))


def _visible(value: float, bound: float) -> str:
    """`value` with 4 significant digits, or as many more as it takes to show on which side of `bound` it lies:
    a max of 1.0000001 must not print as 1."""
    for digits in range(4, 18):
        text = f"{value:.{digits}g}"
        if (float(text) > bound) == (value > bound) and (float(text) < bound) == (value < bound):
            return text
    return repr(value)


def read_photo(image: object, name: str = "image") -> Tensor:
    """A photo [C, H, W] in [0, 1] from a tensor, a file path, or a sample name (china, flower); `name` is what
    the caller calls it in errors ('image', 'guide')."""
    if isinstance(image, Tensor):
        return check_image(image, name).float()
    if not isinstance(image, (str, Path)):
        raise DreamlabError(f"{name} must be a torch tensor [C, H, W] in [0, 1], a PNG/JPEG path, or one of "
                            f"{', '.join(SAMPLE_PHOTOS)}, got {type(image).__name__}; dreamlab.io.load_image reads a "
                            f"file as a tensor{_conversion(image)}")
    if isinstance(image, str) and not image.strip():  # Path('') would be the current folder
        raise DreamlabError(f"{name} is an empty path; give a PNG/JPEG path or one of {', '.join(SAMPLE_PHOTOS)}")
    if is_sample_photo(image):
        return sample_photo(image, f"{name} {image!r}")
    if not Path(image).exists():
        raise _no_such_file(name, image)
    # load_image refuses a float TIFF's NaN and out-of-range values; check_image refuses what else is off
    return check_image(load_image(image, name=name), f"{name} {str(image)!r}").float()


def _no_such_file(name: str, path: str | Path) -> DreamlabError:
    """The error for a photo path that names no file; for ./china, the bare name that is the sample photo, and for
    Path('china'), the plain string."""
    sample = Path(path).name if Path(path).name in SAMPLE_PHOTOS else None
    how = ""
    if sample and isinstance(path, Path) and str(path) == sample:
        how = f": pass the string {sample!r}, not a Path, for it"
    elif sample:
        how = f": write {sample}, without a folder, for it"
    return DreamlabError(f"cannot read {name} {str(path)!r}: no such file; give a PNG/JPEG path or one of "
                         f"{', '.join(SAMPLE_PHOTOS)} (scikit-learn's sample photos{how})")


def _conversion(value: object) -> str:
    """How to make a tensor of a NumPy array or a PIL image, for read_photo's error ('' for anything else)."""
    if isinstance(value, np.ndarray):
        channels_last = value.ndim == 3 and value.shape[-1] in (1, 3) and value.shape[0] not in (1, 3)
        layout = ".permute(2, 0, 1)" if channels_last else ""
        scale = ".float() / 255" if value.dtype == np.uint8 else ".float()"
        return f", and torch.from_numpy(array){layout}{scale} converts this {value.dtype} array {list(value.shape)}"
    if isinstance(value, Image.Image):
        return ", and torchvision.transforms.functional.to_tensor(picture) converts a PIL image"
    return ""


# what a pixel digest is of: the same bytes for the same image, however it was read or made
PIXELS = "pixels (float32 [C, H, W] values in [0, 1], C order, little-endian)"


def pixel_digest(photo: Tensor) -> str:
    """The first 16 hex digits of the sha256 of an image's pixels, as `PIXELS` says (a file's is of its bytes)."""
    values = photo.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4", copy=False)
    return hashlib.sha256(values.tobytes()).hexdigest()[:16]


def photo_record(source: object, pixels: Tensor, key: str = "photo") -> dict[str, str]:
    """Which image a run read, for its provenance: `dreamlab:KEY` (the path as given, the sample name, or
    'tensor') and the sha256 prefix of its file, or of its pixels (`pixels`, as read) for a sample or a tensor,
    with `dreamlab:KEY_sha256_of` saying which. The guide's name goes under `guide_file` (`guide` is its setting).

    >>> photo_record("china", sample_photo("china", "the example"), "init")["dreamlab:init_sha256_of"].split()[0]
    'pixels'
    """
    name_key = "guide_file" if key == "guide" else key
    if isinstance(source, (str, Path)) and Path(source).is_file():
        name, digest, of = str(source), file_digest(source), "file"
    else:
        name, digest, of = str(source) if isinstance(source, (str, Path)) else "tensor", pixel_digest(pixels), PIXELS
    return {f"dreamlab:{name_key}": name, f"dreamlab:{key}_sha256": digest, f"dreamlab:{key}_sha256_of": of}


SAMPLE_SOURCE = "scikit-learn sample photo"


def image_record(name: str, source: str | Path | Tensor, photo: Tensor | None = None) -> dict[str, str]:
    """An input image's name and sha256 (its first 16 hex digits, as render and cam record files): of its file, or
    of its pixels (`photo`, as read) for a tensor or a sample photo; `sha256_of` says which."""
    if isinstance(source, Tensor) or is_sample_photo(source):
        if photo is None:
            raise ValueError("the pixels of a tensor or sample photo are needed for its digest")
        record = {"name": name, "sha256": pixel_digest(photo), "sha256_of": PIXELS}
        return record if isinstance(source, Tensor) else {**record, "source": SAMPLE_SOURCE}
    return {"name": name, "sha256": file_digest(source), "sha256_of": "file"}


def photos_record(sources: Sequence[object], photos: Sequence[Tensor], key: str) -> dict[str, str]:
    """Which images a run read as one input (MACO's photos), for its provenance: `dreamlab:KEY`, a JSON list of
    one image_record per source, as given (the path, the sample name, or 'tensor [shape]'), as `dreamlab:images`
    lists examples' photos; JSON, so that a path holding a comma still reads as one name.

    >>> json.loads(photos_record(["china"], [sample_photo("china", "the example")], "maco_photos")
    ...            ["dreamlab:maco_photos"])[0]["name"]
    'china'
    """
    records = [image_record(f"tensor {list(pixels.shape)}" if isinstance(source, Tensor) else str(source),
                            source, pixels)  # type: ignore[arg-type]  (read_photo took it: a path, name or tensor)
               for source, pixels in zip(sources, photos)]
    return {f"dreamlab:{key}": json.dumps(records, separators=(",", ":"), ensure_ascii=False)}


VECTOR_SUFFIXES = (".npy", ".pt", ".txt", ".csv")


def load_vectors(path: str | Path) -> Tensor:
    """Directions in a layer's channel space from a file, as a tensor [C] or [N, C]: a NumPy `.npy` array, a
    tensor saved with `torch.save` (`.pt`, loaded with `weights_only=True`), or numbers in text (`.txt` or `.csv`:
    one direction per line, or one value per line for a single direction). `objectives.direction` checks the
    values."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VECTOR_SUFFIXES:
        raise DreamlabError(f"cannot read directions from {str(path)!r}: give a {', '.join(VECTOR_SUFFIXES)} file "
                            f"holding a vector [C] or a matrix [N, C]")
    if not path.is_file():
        raise DreamlabError(f"no such file: {str(path)!r}; give the {suffix} file holding the directions, a vector [C] "
                            f"or a matrix [N, C]")
    try:
        with warnings.catch_warnings():  # loadtxt warns of an empty file, torch.load of an old pickle protocol:
            warnings.simplefilter("ignore")  # the one-line error below says what was wrong
            value = _read_vectors(path, suffix)
    except PermissionError:  # (torch.load's would be told as a damaged file)
        raise permission_denied("directions from", path) from None
    except Exception as exc:  # each reader has its own errors for a damaged or foreign file
        first = _torch_load_failure(exc) if suffix == ".pt" else first_line(exc)
        raise DreamlabError(f"cannot read directions from {str(path)!r} ({first[:160]}); give a {suffix} file "
                            f"holding a vector [C] or a matrix [N, C]") from None
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, Tensor):
        return value.detach()
    kind = f"a {type(value).__name__}" if not isinstance(value, np.ndarray) else f"an array of dtype {value.dtype}"
    raise DreamlabError(f"{str(path)!r} holds {kind}, not numbers: save one vector [C] or matrix [N, C] of "
                        f"floats (np.save, or torch.save of a tensor)")


def _torch_load_failure(exc: Exception) -> str:
    """Why torch.load(weights_only=True) refused a file, in a few words: its own message is a paragraph, with
    terminal colour codes, whose first line says nothing of the file."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    if found:  # e.g. torch.save of a NumPy array
        return f"it holds a pickled {found.group(1)}, which torch.load(weights_only=True) does not open"
    return f"torch.load raised {type(exc).__name__}: the file is corrupt, truncated or not a PyTorch file"


def _read_vectors(path: Path, suffix: str) -> object:
    """What a --direction file holds, read by the reader of its suffix (load_vectors checks it)."""
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".pt":
        return torch.load(path, map_location="cpu", weights_only=True)
    value = np.loadtxt(path, delimiter="," if suffix == ".csv" else None, dtype=np.float64, ndmin=2)
    return value.ravel() if value.shape[0] == 1 or value.shape[1] == 1 else value  # a row or a column
