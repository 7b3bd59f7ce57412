"""Import throughput on real paintings: the workbench's import with its default image thread pool vs one
image thread.

Imports the People-Art development set (../shared/data/peopleart, 2,869 paintings, or the first --limit N)
with annotations.importer.import_collection into a fresh SQLite database and data directory each time, in
two variants that differ only in WORKBENCH_IMPORT_THREADS (settings.IMPORT_THREADS, read by
importer.stage_images):

* one thread (the baseline): WORKBENCH_IMPORT_THREADS=1, decode, verify and thumbnail one image after the
  other;
* thread pool (the workbench): WORKBENCH_IMPORT_THREADS unset, the default pool (min(8, CPUs) threads).

Fairness: a warm-up first reads every source image once, so that neither variant pays for a cold page
cache; then --runs rounds (default 3) each import once with both variants, the order alternating round by
round (one thread first in rounds 1, 3, ..., the pool first in rounds 2, 4, ...). Each import runs in a
fresh child process (`--child`, started after the database is migrated by another process), so that its
peak memory, ru_maxrss of that process, is its own variant's; the parent stays small (its own peak RSS,
printed, is a floor under every child's, as a child inherits its parent's RSS at fork). The time is that
of import_collection alone (no interpreter or Django start-up, no migration).

Printed: images/s of each variant as median (lowest–highest, runs) with the spread in percent, the ratio
pool / one thread as the median of the per-round ratios, and the median peak RSS of each variant. The
image threads the pool really ran (the most "import-image" threads seen alive) are printed too.

    .venv/bin/python bench/import_throughput.py [--limit 1000] [--runs 3] [--data ../shared/data/peopleart]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import (
    Samples,
    add_runs_argument,
    check_runs,
    child_result,
    machine_line,
    paired_ratio,
    show_ratio,
)

ROOT = Path(__file__).resolve().parent.parent

# Variant name → WORKBENCH_IMPORT_THREADS (None: unset, the default pool).
VARIANTS: dict[str, str | None] = {"one thread": "1", "thread pool": None}
BASELINE, POOL = VARIANTS


def write_metadata(dataset: Path, out: Path, limit: int | None) -> list[Path]:
    """The import's metadata CSV for the first `limit` paintings; returns their image files."""
    with open(dataset / "metadata.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:limit]
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "path", "title", "author", "style", "person_boxes"])
        for row in rows:
            writer.writerow(
                [
                    f"peopleart/{row['path']}",
                    row["path"],
                    row["title"],
                    row["artist"],
                    row["style"],
                    row["person_boxes"],
                ]
            )
    return [dataset / row["path"] for row in rows]


def warm_page_cache(files: list[Path]) -> tuple[int, float]:
    """Reads every file once (in 1 MiB chunks, kept nowhere); returns bytes read and seconds."""
    start, total = time.perf_counter(), 0
    for path in files:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                total += len(chunk)
    return total, time.perf_counter() - start


def child(dataset: Path, metadata: Path) -> dict:
    """Runs in the child process: one import into the database and data directory its environment names."""
    import threading

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
    import django

    django.setup()
    from annotations.importer import import_collection

    most_threads = 0

    def progress(fraction: float, message: str) -> None:
        # Called by the importing thread after each image: count the pool threads then alive.
        nonlocal most_threads
        alive = sum(t.name.startswith("import-image") for t in threading.enumerate())
        most_threads = max(most_threads, alive)

    start = time.perf_counter()
    report = import_collection(dataset, metadata, None, "bench", progress=progress)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "created": report.artworks_created,
        "image_threads": most_threads,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_variant(variant: str, dataset: Path, metadata: Path) -> dict:
    """Migrates a fresh database in a fresh data directory, then imports into it in a fresh child process."""
    with tempfile.TemporaryDirectory(prefix="bench-import-") as data_dir:
        env = {**os.environ, "DEBUG": "1", "WORKBENCH_DATA_DIR": data_dir}
        env.pop("DATABASE_URL", None)
        env.pop("WORKBENCH_IMPORT_THREADS", None)
        if VARIANTS[variant] is not None:
            env["WORKBENCH_IMPORT_THREADS"] = VARIANTS[variant]
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        command = [sys.executable, __file__, "--child", str(dataset), str(metadata)]
        return child_result(command, f"the {variant} import", cwd=ROOT, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "peopleart")
    parser.add_argument("--limit", type=int, default=None)
    add_runs_argument(parser)
    parser.add_argument("--child", nargs=2, metavar=("DATASET", "METADATA"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(child(Path(args.child[0]), Path(args.child[1]))))
        return

    print(machine_line())
    check_runs(args.runs)
    dataset = args.data.resolve()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as work:
        metadata = Path(work) / "metadata.csv"
        files = write_metadata(dataset, metadata, args.limit)
        count = len(files)
        print(f"{count} images from {dataset}")
        size, seconds = warm_page_cache(files)
        print(f"warm-up: read every source image once, {size / 2**20:.0f} MiB in {seconds:.1f} s")

        results: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
        for round_index in range(args.runs):
            order = list(VARIANTS) if round_index % 2 == 0 else list(reversed(VARIANTS))
            for variant in order:
                result = run_variant(variant, dataset, metadata)
                if result["created"] != count:
                    raise SystemExit(f"{variant}: created {result['created']} artworks, expected {count}")
                results[variant].append(result)
                print(
                    f"  round {round_index + 1}, {variant:11s}: {result['seconds']:7.2f} s  "
                    f"{count / result['seconds']:7.1f} images/s  peak RSS {result['peak_rss_mib']:5.0f} MiB  "
                    f"(image threads: {result['image_threads']})"
                )

    rate = {v: Samples.of([count / r["seconds"] for r in results[v]]) for v in VARIANTS}
    peak = {v: Samples.of([r["peak_rss_mib"] for r in results[v]]) for v in VARIANTS}
    threads = {v: max(r["image_threads"] for r in results[v]) for v in VARIANTS}
    print()
    for variant in VARIANTS:
        print(
            f"{variant:11s} (image threads: {threads[variant]}): {rate[variant].show('images/s', 1)}, "
            f"spread {rate[variant].spread_percent:.0f} %; peak RSS {peak[variant].show('MiB', 0)}"
        )
    print(f"ratio {POOL} / {BASELINE} (per round): {show_ratio(paired_ratio(rate[POOL], rate[BASELINE]))}")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(peak RSS of this parent process, a floor under the children's: {own:.0f} MiB)")


if __name__ == "__main__":
    main()
