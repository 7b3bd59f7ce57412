"""How many damaged JPEGs get through: Pillow alone (the import before issue 10) and the import now.

Each photograph is damaged in one of six ways, in the middle third of the file: 1 KB zeroed, 64 bytes of 0xFF,
cut in half and closed with an end marker, 4 KB dropped, 1 KB of random bytes, 1 to 64 random bytes. A damage
that decodes into other valid entropy codes is invisible to every decoder (JPEG carries no checksum); the
last two rows show how often that happens, and how many of those changed the picture at all.

    .venv/bin/python bench/damaged_jpegs.py [--images ../shared/data/wikiart-styles/images] [--count 40]

Without `--images`, the demo's photographs under the data folder are used when present.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from annotations.images import ImageProblem, decode  # noqa: E402


def damaged(data: bytes, how: str, rng: random.Random) -> bytes:
    b = bytearray(data)
    at = rng.randrange(len(b) // 3, 2 * len(b) // 3)
    if how == "1 KB zeroed":
        b[at : at + 1024] = bytes(1024)
    elif how == "64 bytes of 0xFF":
        b[at : at + 64] = b"\xff" * 64
    elif how == "cut, end marker added":
        b = b[:at] + b"\xff\xd9"
    elif how == "4 KB dropped":
        del b[at : at + 4096]
    elif how == "1 KB random":
        b[at : at + 1024] = bytes(rng.randrange(256) for _ in range(1024))
    else:
        n = rng.choice([1, 8, 64])
        b[at : at + n] = bytes(rng.randrange(256) for _ in range(n))
    return bytes(b)


def pillow_decodes(data: bytes) -> np.ndarray | None:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
        return np.asarray(image.convert("RGB"), dtype=np.int16)
    except Exception:  # noqa: BLE001 - any refusal counts as refused
        return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=Path, default=Path("../shared/data/wikiart-styles/images"))
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    files = sorted(args.images.rglob("*.jpg"))[: args.count]
    if not files:
        sys.exit(f"no JPEG under {args.images}")
    rng = random.Random(args.seed)
    kinds = [
        "1 KB zeroed",
        "64 bytes of 0xFF",
        "cut, end marker added",
        "4 KB dropped",
        "1 KB random",
        "1-64 random bytes",
    ]
    print(f"{len(files)} photographs from {args.images}")
    print(f"{'damage':<24} {'Pillow accepts':>15} {'import accepts':>15} {'accepted, pixels changed':>25}")
    for kind in kinds:
        pillow = ours = changed = 0
        for path in files:
            data = path.read_bytes()
            original = pillow_decodes(data)
            bad = damaged(data, kind, rng)
            pixels = pillow_decodes(bad)
            pillow += pixels is not None
            try:
                decode(bad, max_pixels=10**9)
                ours += 1
                changed += pixels is not None and (
                    pixels.shape != original.shape or float(np.abs(pixels - original).mean()) > 1
                )
            except ImageProblem:
                pass
        print(
            f"{kind:<24} {pillow:>9}/{len(files):<5} {ours:>9}/{len(files):<5} {changed:>19}/{len(files):<5}"
        )
    intact = sum(1 for path in files if _accepted(path.read_bytes()))
    print(f"intact photographs accepted: {intact}/{len(files)}")


def _accepted(data: bytes) -> bool:
    try:
        decode(data, max_pixels=10**9)
        return True
    except ImageProblem:
        return False


if __name__ == "__main__":
    main()
