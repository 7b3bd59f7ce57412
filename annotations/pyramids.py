"""Tiled pyramidal TIFFs for a real IIIF image server (issue 15, item 2). Plain: no Django.

The workbench's own Image API service is level 0: it serves its two thumbnails, so a viewer's zoom stops at
1,600 px. Deep zoom needs tiles at every scale of the full-resolution image, which is what IIPImage
(`iipsrv`, Debian's `iipimage-server`) serves from one tiled, multi-resolution TIFF per image: 256 px JPEG
tiles, each level half the previous, the file iipsrv's documentation asks for. libvips (`pyvips` with its
binary wheel) writes it streaming, a strip at a time, so a 20,000 px scan never sits whole in memory.

One pyramid per image content (`pyramid_name`: the image's SHA-256), so two artworks of the same photograph
share it and a replaced image never shows its predecessor's tiles. The SHA-256 is also the image server's
identifier, which matters because the server has no login: a name nobody can guess is the only thing that
keeps a collection's images from being listed (see the README's "IIIF" section).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

TILE_SIDE = 256
JPEG_QUALITY = 85  # libvips subsamples chroma below 90, as the source photographs almost always are
SUFFIX = ".tif"


def pyramid_name(image_sha256: str) -> str:
    """The file name of an image's pyramid, which is also its identifier on the image server."""
    if len(image_sha256) != 64 or any(c not in "0123456789abcdef" for c in image_sha256):
        raise ValueError(f"not a SHA-256 in hex: {image_sha256!r}")
    return image_sha256 + SUFFIX


def write_pyramid(source: Path, destination: Path, quality: int = JPEG_QUALITY) -> int:
    """Write `source` (any image libvips reads), turned upright as its EXIF orientation says (the canvas is
    upright, `annotations.images.upright`), as a tiled JPEG pyramid at `destination`, atomically: a reader
    (the image server) sees the old file or the whole new one, never a half-written TIFF. Returns its size
    in bytes."""
    import pyvips  # imported here: libvips loads only where pyramids are made

    destination.parent.mkdir(parents=True, exist_ok=True)
    # Named by process and thread: two builds at once (two imports' follow-ups) never share a partial file.
    partial = destination.with_name(f".{destination.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        # Read top to bottom, a strip at a time, unless the picture must be turned first (a turn reads it
        # out of order: libvips then decodes it whole, to memory or a temporary file).
        image = pyvips.Image.new_from_file(str(source), access="sequential")
        if image.get_typeof("orientation") and image.get("orientation") not in (0, 1):
            image = pyvips.Image.new_from_file(str(source)).autorot()
        if image.hasalpha():
            image = image.flatten(background=[255, 255, 255])  # JPEG tiles have no alpha
        if image.interpretation not in ("srgb", "b-w"):
            image = image.colourspace("srgb")  # CMYK and 16-bit scans: JPEG tiles are 8-bit sRGB or grey
        image.tiffsave(
            str(partial),
            tile=True,
            tile_width=TILE_SIDE,
            tile_height=TILE_SIDE,
            pyramid=True,
            compression="jpeg",
            Q=quality,
            bigtiff=image.width * image.height > 400_000_000,  # a classic TIFF stops at 4 GiB
        )
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return destination.stat().st_size


def remove_abandoned_partials(folder: Path, older_than_s: float = 3600.0) -> int:
    """Delete partial pyramids a killed writer left behind (a finished write renames its partial away);
    only old ones, so a write still in progress elsewhere keeps its file. Returns how many went."""
    removed = 0
    cutoff = time.time() - older_than_s
    for partial in folder.glob(".*.part") if folder.is_dir() else ():
        try:
            if partial.stat().st_mtime < cutoff:
                partial.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # its writer finished or another cleaner was first
    return removed
