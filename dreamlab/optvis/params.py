"""Image parameterizations: modules whose forward() returns a batch of images [B, C, H, W] in [0, 1].

>>> g = torch.Generator().manual_seed(0)
>>> FourierParam(4, 3, 224, 224, generator=g)().shape
torch.Size([4, 3, 224, 224])
"""
from __future__ import annotations

import inspect
import math
import numbers
import os
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from dreamlab.errors import ArgumentValueError, DreamlabError, check_whole, unknown, unknown_keyword

# Square root of the colour correlation of ImageNet images, from lucid (tensorflow/lucid,
# optvis/param/color.py, `color_correlation_svd_sqrt`). Optimizing in this basis decorrelates the colour
# channels, so a unit step changes luminance and colour about equally.
COLOR_CORRELATION_SVD_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                                           [0.27, 0.00, -0.05],
                                           [0.27, -0.09, 0.03]])


def normalized_color_matrix(matrix: Tensor = COLOR_CORRELATION_SVD_SQRT) -> Tensor:
    """Scale the matrix so its largest column has unit norm (lucid's `max_norm_svd_sqrt`)."""
    return matrix / matrix.norm(dim=0).max()


Generators = torch.Generator | Sequence[torch.Generator] | None


def seeded_randn(shape: tuple[int, ...], generator: Generators, device: torch.device | str | None) -> Tensor:
    """Normal noise of `shape`; with one generator per sample, sample i comes from generator i alone, so a
    unit's starting image does not depend on which other units share its batch."""
    if isinstance(generator, Sequence):
        if len(generator) != shape[0]:
            raise ArgumentValueError(f"generator= holds {len(generator)} generator(s) for a batch of {shape[0]}; "
                                     f"give one per sample, or a single torch.Generator for the whole batch")
        return torch.stack([torch.randn(shape[1:], generator=g, device=device) for g in generator])
    return torch.randn(shape, generator=generator, device=device)


def check_color_matrix(matrix: object) -> None:
    """A 3x3 matrix of finite numbers that can be inverted (a start image is mapped through its inverse)."""
    try:
        values = torch.as_tensor(matrix, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise DreamlabError(f"color_matrix must be a 3x3 matrix of numbers, got {matrix!r}"[:300]) from None
    if tuple(values.shape) != (3, 3):
        raise DreamlabError(f"color_matrix must be 3x3, got shape {list(values.shape)}")
    if not bool(torch.isfinite(values).all()) or abs(float(torch.linalg.det(values))) < 1e-9:
        raise DreamlabError("color_matrix must hold finite numbers and be invertible (its columns are the colour "
                            "basis); leave it out for lucid's")


def _real_in(value: object, low: float, high: float) -> bool:
    """Whether `value` is a finite real number (not a bool) strictly between `low` and `high`."""
    return (not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
            and low < value < high)


def check_image_shape(kind: str, batch: object, channels: object, height: object, width: object) -> None:
    """Refuses, in one line naming the parameterization `kind`, a batch, channel count or side that is not a
    whole number >= 1 (torch would fail later with a message about tensor shapes, or make an empty image)."""
    for name, value in (("batch", batch), ("channels", channels), ("height", height), ("width", width)):
        check_whole(f"{kind} {name}", value, 1, hint="; give the image's shape as whole numbers, e.g. (1, 3, 224, 224)")


def check_start_level(value: object) -> None:
    """Refuses, in one line, a `start_level` that is not a number strictly between 0 and 1."""
    if not _real_in(value, 0, 1):
        raise DreamlabError(f"start_level must be between 0 and 1 (exclusive) (the level a zero raw image maps to; "
                            f"0.5: grey, 0.05: near-black), got {value!r}")


class ImageParam(nn.Module):
    """Base: subclasses produce unbounded 'raw' images; colour decorrelation and a sigmoid map them to [0, 1].

    `start_level` is the value a zero raw image maps to (0.5: grey; 0.05: near-black, for digits on black).
    With `alpha` the raw images have one more channel, the last, which a sigmoid alone makes the alpha
    (opacity; a zero raw alpha is 0.5, as lucid's): forward() then gives [B, channels + 1, H, W].
    """

    def __init__(self, channels: int, decorrelate: bool = True, color_matrix: Tensor | None = None,
                 start_level: float = 0.5, device: torch.device | str | None = None, alpha: bool = False):
        super().__init__()
        check_start_level(start_level)
        self.channels = channels
        self.alpha = alpha
        use_matrix = decorrelate and channels == 3
        matrix = normalized_color_matrix(COLOR_CORRELATION_SVD_SQRT if color_matrix is None else color_matrix)
        matrix = matrix.to(device)  # on the image's device: the einsum in forward() mixes the two
        self.register_buffer("color_matrix", matrix if use_matrix else None, persistent=False)
        self.offset = math.log(start_level / (1 - start_level))  # logit: added before the sigmoid

    def raw(self) -> Tensor:
        """The images before colour decorrelation and the sigmoid, [B, C, H, W] (each parameterization's own)."""
        raise NotImplementedError

    def forward(self) -> Tensor:
        """The images [B, C, H, W] in (0, 1): `raw()` mixed by the colour matrix, shifted by the start level,
        through a sigmoid."""
        x = self.raw()
        alpha = None
        if self.alpha:  # the colour basis and the start level are the colours' alone
            x, alpha = x[:, :self.channels], x[:, self.channels:]
        if self.color_matrix is not None:
            x = torch.einsum("bchw,dc->bdhw", x, self.color_matrix)
        colour = torch.sigmoid(x + self.offset if self.offset else x)
        return colour if alpha is None else torch.cat([colour, torch.sigmoid(alpha)], 1)


class PixelParam(ImageParam):
    """One free value per pixel and channel (small random init around grey)."""

    def __init__(self, batch: int, channels: int, height: int, width: int, *, generator: Generators = None,
                 sd: float = 0.01, decorrelate: bool = True, color_matrix: Tensor | None = None,
                 start_level: float = 0.5, device: torch.device | str | None = None, alpha: bool = False):
        check_image_shape("PixelParam", batch, channels, height, width)
        super().__init__(channels, decorrelate, color_matrix, start_level, device, alpha)
        init = seeded_randn((batch, channels + alpha, height, width), generator, device) * sd
        self.pixels = nn.Parameter(init)

    def raw(self) -> Tensor:
        """The pixels themselves, [B, C, H, W]."""
        return self.pixels


def fourier_scale(height: int, width: int, decay_power: float = 1.0) -> Tensor:
    """Per-frequency scale 1/f^decay, with f clamped at the lowest frequency (the 1/f spectrum of natural images).

    From lucid's `fft_image` (Olah et al., Feature Visualization, Distill 2017).
    """
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    freqs = torch.sqrt(fx * fx + fy * fy)
    return 1.0 / freqs.clamp(min=1.0 / max(height, width)) ** decay_power


class FourierParam(ImageParam):
    """Image as a real FFT spectrum scaled by 1/frequency: optimization favours low frequencies.

    With 3 decorrelated colour channels the two chromatic axes' zero frequency (the image's mean colour) is
    frozen at its start value (`freeze_chroma_mean`): optimizers that normalize each colour axis on its own
    (ChannelAdam) otherwise let it run away into a colour cast (QUALITY.md, hed-vgg16). Luminance's mean stays
    free, and an init image (`image_to_param_raw`) sets the frozen value, so it keeps its mean colour.
    """

    # lucid divides the inverse FFT by 4 (a constant found by hand to start near grey); kept for parity
    SPATIAL_DIVISOR = 4.0

    def __init__(self, batch: int, channels: int, height: int, width: int, *, generator: Generators = None,
                 sd: float = 0.01, decay_power: float = 1.0, decorrelate: bool = True,
                 color_matrix: Tensor | None = None, start_level: float = 0.5,
                 freeze_chroma_mean: bool = True, device: torch.device | str | None = None, alpha: bool = False):
        check_image_shape("FourierParam", batch, channels, height, width)
        super().__init__(channels, decorrelate, color_matrix, start_level, device, alpha)
        self.size = (height, width)
        spectrum_shape = (batch, channels + alpha, height, width // 2 + 1, 2)
        self.spectrum = nn.Parameter(seeded_randn(spectrum_shape, generator, device) * sd)
        scale = fourier_scale(height, width, decay_power).to(device)
        self.register_buffer("scale", scale, persistent=False)
        if freeze_chroma_mean and self.color_matrix is not None:
            # free: 1 everywhere but the chromatic axes' zero frequency; there the spectrum is replaced by the
            # frozen start value, so those coefficients get no gradient and never move
            free = torch.ones(spectrum_shape[1:], device=device)
            free[1:3, 0, 0, :] = 0  # the alpha channel after them (alpha=True) keeps its mean free
            self.register_buffer("free", free, persistent=False)
            self.register_buffer("frozen", (self.spectrum.detach() * (1 - free)).clone(), persistent=False)
        else:
            self.free = self.frozen = None

    def spectrum_used(self) -> Tensor:
        """The spectrum the image is made from: the parameter with the frozen coefficients put in."""
        if self.free is None:
            return self.spectrum
        return self.spectrum * self.free + self.frozen

    def raw(self) -> Tensor:
        """The images the scaled spectrum makes, [B, C, H, W] (inverse real FFT)."""
        # scaled as real pairs, so that torch.compile has no complex arithmetic to generate code for
        spectrum = torch.view_as_complex(self.spectrum_used() * self.scale[..., None])
        image = torch.fft.irfft2(spectrum, s=self.size, norm="ortho")
        return image / self.SPATIAL_DIVISOR


# lucid's composite activation for CPPNs (tensorflow/lucid, optvis/param/cppn.py): atan, and atan squared, each
# divided by a constant that brings its output to about unit variance
CPPN_ATAN_SCALE, CPPN_SQUARE_SCALE = 0.67, 0.6
CPPN_COORDINATE_RANGE = math.sqrt(3.0)  # lucid's: coordinates run from -sqrt(3) to sqrt(3) along the longer side


class CPPNParam(ImageParam):
    """A compositional pattern-producing network per image: a small network maps each pixel's coordinates
    (x, y) to its colour, so the images are smooth patterns without a pixel grid of their own (Mordvintsev et
    al., "Differentiable Image Parameterizations", Distill 2018; lucid's `param.cppn`). `layers` layers of
    `hidden` units, each followed by atan and atan squared; every sample has its own weights, evaluated at once
    by batched matrix products. Each hidden weight starts normal with variance 1/fan-in (the patterns lucid
    starts from), the output layer normal with `sd` (near grey). Give it lucid's optimization, Adam at lr 0.005:
    at the recipes' learning rates the images saturate into flat colours (hed-vgg16, `features.15`, 128 steps).
    `render(model, objective, param=CPPNParam, optimizer="adam", lr=0.005)`.

    >>> CPPNParam(2, 3, 32, 48, generator=torch.Generator().manual_seed(0))().shape
    torch.Size([2, 3, 32, 48])
    """

    def __init__(self, batch: int, channels: int, height: int, width: int, *, generator: Generators = None,
                 sd: float = 0.01, hidden: int = 24, layers: int = 8, decorrelate: bool = True,
                 color_matrix: Tensor | None = None, start_level: float = 0.5,
                 device: torch.device | str | None = None):
        check_image_shape("CPPNParam", batch, channels, height, width)
        super().__init__(channels, decorrelate, color_matrix, start_level, device)
        self.size = (height, width)
        longer = max(height, width)
        ys = torch.linspace(-1, 1, height) * CPPN_COORDINATE_RANGE * height / longer
        xs = torch.linspace(-1, 1, width) * CPPN_COORDINATE_RANGE * width / longer
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")).flatten(1)  # [2, H*W]: y and x of each pixel
        self.register_buffer("coordinates", grid[None].to(device), persistent=False)
        weights, biases = [], []
        fan_in = 2
        for _ in range(layers):
            weights.append(nn.Parameter(seeded_randn((batch, hidden, fan_in), generator, device) / math.sqrt(fan_in)))
            biases.append(nn.Parameter(torch.zeros(batch, hidden, 1, device=device)))
            fan_in = 2 * hidden  # the composite activation doubles the width
        weights.append(nn.Parameter(seeded_randn((batch, channels, fan_in), generator, device) * sd))
        biases.append(nn.Parameter(torch.zeros(batch, channels, 1, device=device)))
        self.weights, self.biases = nn.ParameterList(weights), nn.ParameterList(biases)

    def raw(self) -> Tensor:
        """The network's output at every pixel's coordinates, [B, C, H, W]."""
        batch = self.weights[0].shape[0]
        x = self.coordinates.expand(batch, -1, -1)
        for k, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bias, weight, x)
            if k < len(self.weights) - 1:
                x = torch.atan(x)
                x = torch.cat([x / CPPN_ATAN_SCALE, x * x / CPPN_SQUARE_SCALE], dim=1)
        return x.view(batch, -1, *self.size)


# The natural amplitude spectrum MacoParam keeps by default: per channel of the param's raw basis (lucid's
# decorrelated colour: luminance, then the two chromatic axes), |F(f)| = gain / f^alpha. Measured for dreamlab on
# scikit-learn's sample photos (china, flower): the mean |rfft2| of their 128-px tiles (stride 64) mapped into
# that basis, least squares in log-log over 2/128 < f < 0.4 cycles/pixel (gains relative to luminance; 256-px
# tiles give the same within 0.02 in alpha). Luminance's 1.06 matches the amplitude exponent of about 1 reported
# for natural images (Field, JOSA A 1987; van der Schaaf & van Hateren, Vision Research 1996).
MACO_ALPHA = (1.06, 1.30, 1.08)
MACO_GAIN = (1.0, 0.75, 1.46)
# the raw image's deviation after standardizing: at 2.5 the random start has a pixel deviation of 0.22, that of
# the sample photos' 128-px tiles (median 0.21 china, 0.23 flower); Horama's 1 gives 0.11, renders of half the
# contrast (and on hed-vgg16 a quarter of the activation)
MACO_CONTRAST = 2.5
# MacoParam's keywords that MacoParam.from_images passes on (it sets the magnitude; render sets the rest)
MACO_OPTIONS = ("decorrelate", "color_matrix", "start_level", "contrast", "freeze_chroma_mean")
MACO_PHASE_SD = math.pi  # a normal phase of sd pi, wrapped to the circle, is within 1% of uniform: natural noise


def check_maco_options(options: Mapping[str, object]) -> None:
    """The values of MacoParam's options (MACO_OPTIONS) among `options`, each refused in one line: checked where
    they are given, also by `from_images`, whose factory builds the param only when the render calls it."""
    for name in ("decorrelate", "freeze_chroma_mean"):
        if name in options and not isinstance(options[name], bool):
            raise DreamlabError(f"{name} must be True or False, got {options[name]!r}")
    if options.get("color_matrix") is not None:
        check_color_matrix(options["color_matrix"])
    if "start_level" in options:
        check_start_level(options["start_level"])
    if "contrast" in options and not _real_in(options["contrast"], 0, math.inf):
        raise DreamlabError(f"contrast must be a finite number > 0 (the raw image's deviation; default "
                            f"{MACO_CONTRAST:g}, the sample photos'), got {options['contrast']!r}")


def natural_magnitude(channels: int, height: int, width: int, decorrelated: bool = True) -> Tensor:
    """[channels, height, width // 2 + 1]: the default MACO magnitude (MACO_ALPHA, MACO_GAIN), with the lowest
    frequency clamped as in `fourier_scale`. Without the decorrelated basis every channel takes luminance's law."""
    laws = zip(MACO_GAIN, MACO_ALPHA) if decorrelated and channels == 3 else [(MACO_GAIN[0], MACO_ALPHA[0])] * channels
    return torch.stack([gain * fourier_scale(height, width, alpha) for gain, alpha in laws])


def resize_magnitude(magnitude: Tensor, height: int, width: int, source_width: int) -> Tensor:
    """A magnitude spectrum [C, h, source_width // 2 + 1] (the rfft2 of images h x source_width) resampled to
    [C, height, width // 2 + 1]: each frequency (in cycles per pixel) read bilinearly at the same frequency of the
    given grid, so the zero frequency stays put. The source width must be given: the columns alone do not say
    whether it was even or odd (9 columns: 16 or 17 px), and the frequency of a column depends on it."""
    channels, h, half = magnitude.shape
    if half != source_width // 2 + 1:
        raise ArgumentValueError(f"a magnitude of {half} columns is not the rfft of {source_width}-px-wide images; "
                                 f"give the width it was measured at, {2 * half - 2} or {2 * half - 1}")
    if (h, source_width) == (height, width):
        return magnitude
    fy = torch.fft.fftfreq(height, dtype=torch.float64) * h + h // 2  # row of the height-centred given grid
    fx = torch.fft.rfftfreq(width, dtype=torch.float64) * source_width  # its column: frequency * source width
    grid = torch.stack(torch.meshgrid(2 * fy / max(h - 1, 1) - 1, 2 * fx / max(half - 1, 1) - 1, indexing="ij"))
    centred = torch.fft.fftshift(magnitude, dim=1)[None]
    resized = torch.nn.functional.grid_sample(centred, grid.flip(0).permute(1, 2, 0)[None].to(magnitude.dtype),
                                              mode="bilinear", padding_mode="border", align_corners=True)
    return resized[0]


def magnitude_source_width(magnitude: Tensor, given: object, width: int) -> int:
    """The full width of the images a user's magnitude [C, h, w // 2 + 1] was measured on: `given`
    (MacoParam's `magnitude_width`), or the render's `width` when its columns fit that width."""
    half = magnitude.shape[2]
    if given is None:
        if half == width // 2 + 1:
            return width
        raise DreamlabError(f"magnitude has {half} columns, the rfft2 of images {2 * half - 2} or {2 * half - 1} px "
                            f"wide, and the render is {width} px wide; give magnitude_width={2 * half - 2} or "
                            f"{2 * half - 1} (the width it was measured at) to resample it, or a magnitude "
                            f"[C, H, {width // 2 + 1}]")
    if isinstance(given, bool) or not isinstance(given, numbers.Integral) or given // 2 + 1 != half:
        raise DreamlabError(f"magnitude_width must be the width the magnitude was measured at, {2 * half - 2} or "
                            f"{2 * half - 1} for its {half} columns (width // 2 + 1), got {given!r}")
    return int(given)


def check_magnitude(magnitude: object, channels: int) -> Tensor:
    """A user's magnitude: a finite, non-negative float tensor [channels, h, w // 2 + 1] that is not all zero."""
    hint = (f"give a tensor [{channels}, H, W // 2 + 1] of finite values >= 0 (the |rfft2| of images in the "
            f"param's colour basis), or MacoParam.from_images(photos)")
    if not isinstance(magnitude, Tensor) or not magnitude.is_floating_point():
        kind = type(magnitude).__name__ if not isinstance(magnitude, Tensor) else f"a {magnitude.dtype} tensor"
        raise DreamlabError(f"magnitude must be a float tensor, got {kind}; {hint}")
    if magnitude.dim() != 3 or magnitude.shape[0] != channels or min(magnitude.shape[1:]) < 2:
        raise DreamlabError(f"magnitude has shape {list(magnitude.shape)}; {hint}")
    if not bool(torch.isfinite(magnitude).all()):
        raise DreamlabError(f"magnitude holds NaN or infinite values; {hint}")
    if bool((magnitude < 0).any()) or not bool((magnitude > 0).any()):
        raise DreamlabError(f"magnitude has {'negative' if bool((magnitude < 0).any()) else 'only zero'} values; "
                            f"{hint}")
    if not bool((magnitude.flatten(1)[:, 1:] > 0).any()):  # the standardized image keeps only each channel's mean
        raise DreamlabError(f"magnitude is zero at every frequency but [:, 0, 0], the zero frequency, which gives flat "
                            f"images (one colour each); {hint}")
    return magnitude.float()


class MacoParam(ImageParam):
    """MAgnitude-Constrained Optimization (Fel et al., "Unlocking Feature Visualization for Deeper Networks with
    MAgnitude Constrained Optimization", NeurIPS 2023): the image's Fourier magnitude is fixed to a natural
    spectrum and only its phase (one value per frequency and channel) is optimized. The image, irfft2 of
    magnitude * exp(i phase), is standardized per sample (zero mean, deviation `contrast`: the paper's code uses 1,
    dreamlab the contrast of natural photos, MACO_CONTRAST) before the colour mapping and sigmoid every ImageParam
    applies, so no frequency and no contrast can run away. The zero frequency's phase sets each channel's mean, and
    on hed-vgg16 Adam drives the red-blue axis's to its blue end on every unit (blue - red +0.07; QUALITY.md,
    "hed-vgg16: MACO"), as FourierParam's chromatic mean ran away before it was frozen. `freeze_chroma_mean=True`
    (3 decorrelated channels) removes each chromatic axis's own mean instead, luminance's left free: the mean
    colour stays the start level's grey, at 0 to 4% less activation there, so it is not the default. An init photo
    (`image_to_param_raw`) then gives its phase, not its mean colour.

    `magnitude` [channels, h, w // 2 + 1] (see `from_images`) replaces the default, a power law measured on
    natural photos (MACO_ALPHA); one of another size is resampled to the render size by frequency, which needs
    `magnitude_width`, the w it was measured at (w // 2 + 1 columns fit an even and an odd w). The random start
    phase comes from `generator`.
    """

    def __init__(self, batch: int, channels: int, height: int, width: int, *, generator: Generators = None,
                 magnitude: Tensor | None = None, decorrelate: bool = True, color_matrix: Tensor | None = None,
                 start_level: float = 0.5, contrast: float = MACO_CONTRAST, magnitude_width: int | None = None,
                 freeze_chroma_mean: bool = False, device: torch.device | str | None = None):
        check_image_shape("MacoParam", batch, channels, height, width)
        super().__init__(channels, decorrelate, color_matrix, start_level, device)
        check_maco_options({"contrast": contrast, "freeze_chroma_mean": freeze_chroma_mean})
        self.size = (height, width)
        self.contrast = float(contrast)
        # 1 for the channels whose own mean raw() removes: the two chromatic axes (the mean colour stays grey),
        # not luminance; None: one mean over all channels removed, as Horama's maco does
        # (freeze_chroma_mean=False, or no decorrelated colour)
        chroma = torch.tensor([0.0, 1.0, 1.0], device=device).view(1, 3, 1, 1)
        self.register_buffer("centred", chroma if freeze_chroma_mean and self.color_matrix is not None else None,
                             persistent=False)
        if magnitude is None:
            if magnitude_width is not None:
                raise DreamlabError(f"magnitude_width={magnitude_width!r} is the width a given magnitude was measured "
                                    f"at, and no magnitude is given; give magnitude= too, or leave it out")
            magnitude = natural_magnitude(channels, height, width, self.color_matrix is not None)
        else:
            magnitude = check_magnitude(magnitude, channels).detach()
            source_width = magnitude_source_width(magnitude, magnitude_width, width)
            magnitude = resize_magnitude(magnitude, height, width, source_width)
        self.register_buffer("magnitude", magnitude.to(device), persistent=False)
        shape = (batch, channels, height, width // 2 + 1)
        self.phase = nn.Parameter(seeded_randn(shape, generator, device) * MACO_PHASE_SD)

    @classmethod
    def from_images(cls, images: Tensor | str | os.PathLike | Sequence[object], **options: object) -> ParamFactory:
        """A factory (for `render(param=...)`) whose magnitude is the mean spectrum of `images` (a tensor
        [B, 3, H, W] or [3, H, W] in [0, 1], one path or sample name, or a list of photos: paths, sample names,
        tensors), each scaled to cover the render size and centre-cropped. `options` go to MacoParam
        (decorrelate, start_level, ...). The factory's `png_text` names the photos in the render's provenance
        (`dreamlab:maco_photos`, JSON: each as given, with a sha256 prefix of its file or its pixels)."""
        from dreamlab.io import photos_record, read_photo

        for name in options:  # refused here, not when the render calls the factory
            if name not in MACO_OPTIONS:
                raise unknown_keyword("MacoParam.from_images", name, MACO_OPTIONS)
        check_maco_options(options)
        if isinstance(images, Tensor):
            given, photos = [images], [images]
        else:  # a lone name or path is one photo, not a sequence of characters
            given = list(images) if isinstance(images, Sequence) and not isinstance(images, str) else [images]
            photos = [read_photo(p, "MACO photo") for p in given]
        if not photos:
            raise DreamlabError("MacoParam.from_images needs at least one photo; give a tensor [B, 3, H, W], "
                                "or a list of paths or sample names (china, flower)")

        def factory(batch: int, channels: int, height: int, width: int, **given: object) -> MacoParam:
            probe = cls(1, channels, 8, 8, **{**options, "device": None})  # the colour basis it is measured in
            magnitude = image_magnitude(photos, probe, (height, width))
            return cls(batch, channels, height, width, magnitude=magnitude, **{**options, **given})

        factory.__name__ = "MacoParam.from_images"
        factory.png_text = photos_record(given, photos, "maco_photos")  # type: ignore[attr-defined]
        return factory

    def raw(self) -> Tensor:
        """The images the fixed magnitude and the optimized phase make, [B, C, H, W] (inverse real FFT)."""
        # built from real pairs, so that torch.compile has no complex arithmetic to generate code for
        pairs = torch.stack((torch.cos(self.phase), torch.sin(self.phase)), -1) * self.magnitude[..., None]
        image = torch.fft.irfft2(torch.view_as_complex(pairs), s=self.size, norm="ortho")
        if self.centred is None:
            image = image - image.mean((1, 2, 3), keepdim=True)
        else:
            image = image - image.mean((2, 3), keepdim=True) * self.centred
        return image * (self.contrast / (image.std((1, 2, 3), keepdim=True) + 1e-4))


def raw_target(image: Tensor, param: ImageParam) -> Tensor:
    """The raw image (before colour mapping and sigmoid) that makes `param` produce `image` in (0, 1)."""
    target = torch.logit(image.clamp(INIT_MARGIN, 1 - INIT_MARGIN)) - param.offset
    if param.color_matrix is not None:
        target = torch.einsum("bchw,dc->bdhw", target, torch.linalg.inv(param.color_matrix))
    return target


def image_magnitude(photos: Sequence[Tensor], param: ImageParam, size: tuple[int, int]) -> Tensor:
    """[C, H, W // 2 + 1]: the mean |rfft2| of `photos` ([3, h, w] or [B, 3, h, w] in [0, 1]) at `size`, in
    `param`'s raw basis, each photo's mean removed (the zero frequency is set to its neighbours' mean)."""
    from dreamlab.io import centre_crop, check_image, cover, match_channels

    tiles = []
    for photo in photos:
        photo = check_image(photo, "MACO photo").float()
        photo = photo[None] if photo.dim() == 3 else photo
        if photo.dim() != 4:
            raise DreamlabError(f"MACO photo must be [3, H, W] or [B, 3, H, W], got shape {list(photo.shape)}")
        tiles.append(centre_crop(cover(match_channels(photo, param.channels), size), size))
    raw = raw_target(torch.cat(tiles), param)
    raw = raw - raw.mean((2, 3), keepdim=True)
    magnitude = torch.fft.rfft2(raw, norm="ortho").abs().mean(0)
    magnitude[:, 0, 0] = (magnitude[:, 0, 1] + magnitude[:, 1, 0]) / 2
    if not bool((magnitude > 0).any()):
        raise DreamlabError("the MACO photos are flat (one colour each): their spectrum is zero at every frequency; "
                            "give photos with some texture, or leave the default natural magnitude (param='maco')")
    return magnitude


# how far inside (0, 1) a start image's pixels are brought before the sigmoid's inverse: at 1e-3 a black pixel
# sat at logit -6.9, where the sigmoid's slope is 1e-3, and a black --init hardly moved in 256 steps
INIT_MARGIN = 0.02


def image_to_param_raw(image: Tensor, param: ImageParam) -> None:
    """Set `param` so that it produces `image` ([B|1, C, H, W] in (0, 1)): start from a photo instead of noise."""
    image = image.to(next(param.parameters()).device)
    target = raw_target(image, param)
    colours = slice(0, param.channels)  # with alpha=True the alpha keeps its start (half transparent)
    with torch.no_grad():
        if isinstance(param, PixelParam):
            param.pixels[:, colours].copy_(target.expand_as(param.pixels[:, colours]))
        elif isinstance(param, FourierParam):
            spectrum = torch.fft.rfft2(target * FourierParam.SPATIAL_DIVISOR, norm="ortho") / param.scale
            param.spectrum[:, colours].copy_(torch.view_as_real(spectrum).expand_as(param.spectrum[:, colours]))
            if param.frozen is not None:
                param.frozen.copy_(param.spectrum * (1 - param.free))
        elif isinstance(param, MacoParam):  # the photo's phase; the magnitude stays the natural one
            phase = torch.fft.rfft2(target, norm="ortho").angle()
            param.phase.copy_(phase.expand_as(param.phase))
        else:
            raise DreamlabError(f"init_image works with the pixel, fourier and maco parameterizations, not "
                                f"{type(param).__name__}; start from noise, or use param='pixel', 'fourier' or "
                                f"'maco'")


PARAMS = {"pixel": PixelParam, "fourier": FourierParam, "maco": MacoParam}

# a user's parameterization: called as factory(batch, channels, height, width, generator=..., device=...) (the
# signature of PixelParam and FourierParam, so a class or a functools.partial of one fits), or with no arguments
ParamFactory = Callable[..., nn.Module]
ParamSpec = str | nn.Module | ParamFactory


def make_param(spec: ParamSpec, batch: int, channels: int, size: int | tuple[int, int], *,
               generator: Generators = None, device: torch.device | str | None = None,
               **options: object) -> nn.Module:
    """A parameterization from a name ('pixel', 'fourier' or 'maco', with `options`), a module (used as it is, moved to
    `device`), or a factory returning one. `generator` holds one generator per sample (see `seeded_randn`).
    A module or factory must produce [batch, channels, H, W] in [0, 1]; anything else is refused here."""
    h, w = (size, size) if isinstance(size, int) else size
    if isinstance(spec, str):
        if spec not in PARAMS:
            raise unknown("parameterization", spec, PARAMS)
        return PARAMS[spec](batch, channels, h, w, generator=generator, device=device, **options)
    if isinstance(spec, nn.Module):
        param = spec
    elif callable(spec) and takes_no_arguments(spec):
        param = spec()
    elif callable(spec):
        try:
            param = spec(batch, channels, h, w, generator=generator, device=device)
        except TypeError as error:
            if not isinstance(generator, Sequence) or "generator" not in str(error).lower():
                raise
            # torch.randn(..., generator=generator) is the natural first try, and torch's message does not say why
            name = getattr(spec, "__name__", type(spec).__name__)
            raise DreamlabError(f"the param factory {name} failed on its generator= ({type(error).__name__}: "
                                f"{str(error).splitlines()[0]}): it is a list of torch.Generator, one per image, "
                                f"so that a unit's start noise does not depend on the batch; draw the noise with "
                                f"dreamlab.optvis.params.seeded_randn((batch, channels, height, width), generator, "
                                f"device), or torch.randn(..., generator=generator[i]) for image i") from None
    else:
        raise DreamlabError(f"param must be a name ({', '.join(PARAMS)}), an ImageParam module or a factory "
                            f"returning one, got {type(spec).__name__}")
    if _is_lucent_pair(param):
        param = LucentParam(*param)
    if not isinstance(param, nn.Module):
        raise DreamlabError(f"the param factory returned {type(param).__name__}; it must return an nn.Module "
                            f"(e.g. an ImageParam) whose forward() gives [B, C, H, W] images in [0, 1], or "
                            f"lucent's pair (params, image_f)")
    param = param.to(device)
    with torch.no_grad():
        images = param()
    if not isinstance(images, Tensor) or images.dim() != 4 or tuple(images.shape[:2]) != (batch, channels):
        shape = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        fixed = isinstance(spec, nn.Module) or takes_no_arguments(spec)
        split = ("; a module or a factory that takes no arguments makes one fixed batch, and must make one image "
                 f"per unit of each batch the render optimizes, {batch} here (a batch_size below the number of "
                 "units splits them: leave batch_size unset, or take the arguments (batch, channels, height, "
                 "width, generator=, device=))") if fixed and isinstance(images, Tensor) and images.dim() == 4 \
            and images.shape[0] != batch else ""
        if split and images.shape[0] % batch == 0:  # lucent's param.image(w, batch=N) for one objective
            copies = images.shape[0] // batch
            split += (f"; if the {images.shape[0]} images are {copies} of each unit (lucent's param.image(w, "
                      f"batch={copies}) for one objective), give diversity={copies} (with diversity_weight=0 they "
                      f"differ by their start only, as in lucent)")
        raise DreamlabError(f"the custom param produced {shape}; expected [{batch}, {channels}, {h}, {w}] "
                            f"(one image per unit, the model's {channels} channels){split}")
    if tuple(images.shape[2:]) != (h, w):  # the provenance and the neuron checks read the render size
        raise DreamlabError(f"the custom param produced {images.shape[3]}x{images.shape[2]} images, but the render "
                            f"size is {w}x{h}; give size=({images.shape[2]}, {images.shape[3]}) (height, width)")
    return param


class LucentParam(nn.Module):
    """lucent's parameterization, a pair (params: the tensors to optimize, image_f: () -> [B, C, H, W] images in
    [0, 1]), as a module: `parameters()` gives those very tensors (image_f reads them), so the optimizer steps
    them in place. They stay on the device lucent made them on."""

    def __init__(self, params: Sequence[Tensor], image_f: Callable[[], Tensor]):
        super().__init__()
        self.tensors = list(params)
        self.image_f = image_f

    def parameters(self, recurse: bool = True) -> Iterator[Tensor]:  # type: ignore[override]
        """The tensors lucent's param function returned, which the optimizer updates."""
        return iter(self.tensors)

    def forward(self) -> Tensor:
        """The images lucent's image function makes, [B, C, H, W] in [0, 1]."""
        return self.image_f()


def _is_lucent_pair(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and callable(value[1]) and \
        isinstance(value[0], (list, tuple)) and bool(value[0]) and all(
            isinstance(t, Tensor) and t.requires_grad for t in value[0])


def takes_no_arguments(factory: Callable) -> bool:
    """Whether a param factory is called with no arguments (lucent's param_f), not with the batch's shape."""
    try:
        return not inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


__all__ = [
    "COLOR_CORRELATION_SVD_SQRT",
    "CPPNParam",
    "PARAMS",
    "FourierParam",
    "ImageParam",
    "MACO_ALPHA",
    "MacoParam",
    "ParamFactory",
    "ParamSpec",
    "PixelParam",
    "fourier_scale",
    "image_to_param_raw",
    "make_param",
    "natural_magnitude",
    "seeded_randn",
]
