"""Checking images and making thumbnails (plain module, no Django)."""

from __future__ import annotations

import hashlib
import io
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import simplejpeg
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# A truncated file must fail the import, not load as a grey-bottomed picture.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# MPO: a camera's multi-picture JPEG (Android "Ultra HDR" too); browsers and the model see its first picture.
FORMAT_EXTENSIONS = {
    "JPEG": "jpg",
    "MPO": "jpg",
    "PNG": "png",
    "TIFF": "tif",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
}
JPEG_FORMATS = ("JPEG", "MPO")


class ImageProblem(ValueError):
    """The file cannot be used as an artwork image; the message says why."""


@dataclass(frozen=True)
class ImageInfo:
    sha256: str
    ext: str
    width: int
    height: int
    size_bytes: int


@dataclass(frozen=True)
class ProcessedImage:
    info: ImageInfo
    data: bytes
    thumbnails: dict[str, bytes]


def read_limited(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageProblem(f"image file not found: {path}") from None
    except OSError as exc:
        raise ImageProblem(f"cannot read image file {path}: {exc.strerror}") from None
    if not path.is_file():
        raise ImageProblem(f"not a file: {path}")
    if size > max_bytes:
        raise ImageProblem(f"image file is {size:,} bytes, over the limit of {max_bytes:,} bytes")
    if size == 0:
        raise ImageProblem("image file is empty")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageProblem(f"cannot read image file {path}: {exc.strerror}") from None


def opened(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """Open (header only) and check format and pixel count, before anything is decoded."""
    image = Image.open(io.BytesIO(data))
    fmt = image.format or ""
    if fmt not in FORMAT_EXTENSIONS:
        raise ImageProblem(
            f"unsupported image format {fmt or 'unknown'}; use JPEG, PNG, TIFF, WebP, GIF or BMP"
        )
    width, height = image.size
    if width * height > max_pixels:
        raise ImageProblem(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,}"
        )
    return image, fmt


def decoded(data: bytes, max_pixels: int, max_side: int | None) -> tuple[Image.Image, str]:
    """Open, check and fully decode; with `max_side`, a JPEG is decoded at the smallest DCT scale that
    still covers it (libjpeg's draft mode: a 64-megapixel photograph in a fraction of the time)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image, fmt = opened(data, max_pixels)
            if fmt in JPEG_FORMATS and max_side:
                # The requested box keeps the aspect ratio: draft() keeps both sides at least this big.
                shrink = max(image.size) / max_side
                image.draft("RGB", (math.ceil(image.width / shrink), math.ceil(image.height / shrink)))
            image.load()
            if fmt in JPEG_FORMATS:
                check_jpeg_stream(data)
    except ImageProblem:
        raise
    except UnidentifiedImageError:
        raise ImageProblem("not an image (no known image format recognised)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageProblem(f"image over the pixel limit: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem(f"corrupt or truncated image: {exc}") from None
    return image, FORMAT_EXTENSIONS[fmt]


def decode(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """Open and fully decode at full size, checking the pixel count from the header before decoding."""
    return decoded(data, max_pixels, max_side=None)


def query_image(data: bytes, max_pixels: int, max_side: int) -> Image.Image:
    """An uploaded query picture, checked and decoded once, upright RGB, at most `max_side` pixels a side.

    A search embeds it at the model's input size (a few hundred pixels), so nothing is lost; decoding a
    64-megapixel upload twice at full size held a web request for about 20 s (issue 10.11).
    """
    image = upright(decoded(data, max_pixels, max_side)[0]).convert("RGB")
    # reducing_gap: a box reduction by an integer factor first, then LANCZOS for the rest (fast, and the
    # same picture to the eye and to the model).
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return image


# The libjpeg warnings that mean picture data was lost or misread: the decoder hit a marker or the end of
# the file inside a scan (and fills the rest with grey), or lost its place in the entropy-coded data.
# Others are harmless (padding between header markers, a newer JFIF version, loose SOS parameters that
# some encoders write) and a strict decoder must not refuse those files.
DAMAGE_WARNINGS = re.compile(
    r"premature end|bad (huffman|arithmetic) code|instead of RST|extraneous bytes before marker 0xd[0-9a]",
    re.IGNORECASE,
)


def check_jpeg_stream(data: bytes) -> None:
    """Refuse a JPEG whose entropy-coded data libjpeg reports as damaged.

    Pillow's decoder ignores libjpeg's warnings: a file with a block overwritten, cut and closed with an
    end marker, or missing a chunk decodes "successfully", the picture continuing in mid-grey from the
    damage down (issue 10: 12 of 20 random mid-file corruptions were accepted). libjpeg-turbo with
    warnings as errors (simplejpeg's strict mode) reports them. At 1/8 scale the check still reads every
    entropy-coded byte, but skips most of the inverse DCT: about half a millisecond for a photograph.
    Damage that decodes into other valid codes is invisible to every decoder (JPEG has no checksum).
    """
    try:
        simplejpeg.decode_jpeg(data, colorspace="GRAY", min_factor=8, strict=True)
    except ValueError as warning:
        if DAMAGE_WARNINGS.search(str(warning)):
            raise ImageProblem(
                f"corrupt or truncated image: the JPEG data is damaged ({warning}); "
                "it would show grey or garbled from the damage down"
            ) from None
        # Anything else: a harmless warning, or an error on a header Pillow read without complaint (it
        # has decoded the whole picture by now): the picture is intact.


def upright(image: Image.Image) -> Image.Image:
    """Turned as its EXIF orientation says (photographs carry it; sizes, thumbnails and signatures are of
    the upright picture), 16-bit and float greys brought to 8 bits."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I", "F"):
        image = ImageOps.autocontrast(image.convert("I").point(lambda v: v / 256).convert("L"))
    return image


def thumbnail_bytes(image: Image.Image, max_side: int) -> bytes:
    thumb = image.copy()
    thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if thumb.mode not in ("RGB", "L"):
        thumb = thumb.convert("RGB")
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=85, optimize=True, progressive=True)
    return out.getvalue()


def process_image(
    path: Path, max_pixels: int, max_bytes: int, thumbnail_sizes: dict[str, int]
) -> ProcessedImage:
    """Read, verify and thumbnail one image; raises ImageProblem with a reason a person can act on."""
    data = read_limited(path, max_bytes)
    image, ext = decode(data, max_pixels)
    image = upright(image)
    info = ImageInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        ext=ext,
        width=image.width,
        height=image.height,
        size_bytes=len(data),
    )
    thumbs = {name: thumbnail_bytes(image, side) for name, side in thumbnail_sizes.items()}
    return ProcessedImage(info=info, data=data, thumbnails=thumbs)
