"""Pyramids for the IIIF image server (`annotations.pyramids.write_pyramid`): time, peak memory and file size
per image, against the baseline of what an import already does with the same file (Pillow decodes it whole
and writes the 1,600 px viewer thumbnail, `annotations.images`), measured in the same run.

The claim under test is the module's: libvips writes the pyramid streaming, a strip at a time, so its memory
does not grow with the picture the way a whole decode does. Pictures are generated (noise over coloured
shapes, JPEG quality 90, so that they compress like photographs rather than flat colour) at three sizes up
to 70 megapixels, under the import's 80-megapixel limit; each measurement runs in a fresh process so that its
peak resident memory is its own. Variants alternate run by run (`bench/timing.py`).

    python bench/pyramids.py [--runs 3] [--sizes 2400x1600,6000x4000,10000x7000]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.timing import (  # noqa: E402
    Samples,
    add_runs_argument,
    check_runs,
    child_result,
    machine_line,
    paired_ratio,
    show_ratio,
)

VIEWER_SIDE = 1600  # the viewer thumbnail an import writes (settings.THUMBNAIL_SIZES["viewer"])


def make_picture(path: Path, width: int, height: int) -> None:
    import numpy as np
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (180, 150, 110))
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(width)
    for _ in range(60):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(width // 40, width // 6))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    pixels = np.asarray(image, dtype=np.int16)
    for top in range(0, height, 1000):  # noise in bands: the whole noise array would dwarf what is measured
        band = pixels[top : top + 1000]
        band += rng.integers(-12, 13, band.shape, dtype=np.int16)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)


def peak_resident_mib() -> float:
    """This process's peak resident memory since its exec (VmHWM). Not getrusage's ru_maxrss: Linux keeps
    that across fork and exec, so a child would report the parent's peak (here, the generated picture's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the best there is


def child(mode: str, source: Path, target: Path) -> None:
    """One measurement: seconds and peak resident MiB of this process, as JSON on the last line."""
    started = time.perf_counter()
    if mode == "pyramid":
        from annotations.pyramids import write_pyramid

        size = write_pyramid(source, target)
    else:
        from PIL import Image, ImageOps

        with Image.open(source) as image:
            upright = ImageOps.exif_transpose(image)
            upright.thumbnail((VIEWER_SIDE, VIEWER_SIDE))
            upright.save(target, "JPEG", quality=90)
        size = target.stat().st_size
    seconds = time.perf_counter() - started
    peak_mib = peak_resident_mib()
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, "bytes": size}))


Results = dict[str, dict[str, list[float]]]


def report(size: str, megapixels: float, source_mb: float, results: Results) -> None:
    pyramid, thumbnail = results["pyramid"], results["thumbnail"]
    seconds, baseline = Samples.of(pyramid["seconds"]), Samples.of(thumbnail["seconds"])
    memory, baseline_memory = Samples.of(pyramid["peak_mib"]), Samples.of(thumbnail["peak_mib"])
    speed = Samples.of([megapixels / s for s in pyramid["seconds"]])
    pyramid_mb = pyramid["bytes"][-1] / 1e6
    print(f"\n{size} ({megapixels:.1f} MP, JPEG {source_mb:.1f} MB)")
    print(f"  pyramid:  {seconds.show('s')}, {speed.show('MP/s')}, peak memory {memory.show('MiB', 0)}")
    print(f"            file {pyramid_mb:.1f} MB ({pyramid_mb / source_mb:.2f} × the JPEG)")
    print(f"  baseline: {baseline.show('s')}, peak memory {baseline_memory.show('MiB', 0)}")
    print(
        f"  pyramid / baseline: time {show_ratio(paired_ratio(seconds, baseline))}, "
        f"peak memory {show_ratio(paired_ratio(memory, baseline_memory))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_runs_argument(parser)
    parser.add_argument("--sizes", default="2400x1600,6000x4000,10000x7000")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "SOURCE", "TARGET"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        mode, source, target = options.child
        child(mode, Path(source), Path(target))
        return
    check_runs(options.runs)
    import pyvips

    print(f"baseline: what an import does with a file (Pillow decodes it whole, {VIEWER_SIDE} px thumbnail)")
    print(machine_line() + f"; libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for size in options.sizes.split(","):
            width, height = (int(n) for n in size.split("x"))
            source = folder / f"{size}.jpg"
            make_picture(source, width, height)
            results: Results = {
                mode: {"seconds": [], "peak_mib": [], "bytes": []} for mode in ("pyramid", "thumbnail")
            }
            for run in range(options.runs):
                order = ("pyramid", "thumbnail") if run % 2 == 0 else ("thumbnail", "pyramid")
                for mode in order:
                    target = folder / f"{size}-{mode}.{'tif' if mode == 'pyramid' else 'jpg'}"
                    command = [sys.executable, __file__, "--child", mode, str(source), str(target)]
                    measured = child_result(command, f"{mode} of {size}", cwd=ROOT)
                    for key, value in measured.items():
                        results[mode][key].append(value)
            report(size, width * height / 1e6, source.stat().st_size / 1e6, results)


if __name__ == "__main__":
    main()
