"""Import throughput on real paintings: the workbench's import vs a one-thread baseline.

Imports the People-Art development set (../shared/data/peopleart, 2,869 paintings, or --limit N)
twice into fresh SQLite databases and data directories, once with one image thread (the
baseline: decode, verify and thumbnail one image after the other) and once with the default
thread pool, and prints images/s for both and their ratio, measured in the same run.

    .venv/bin/python bench/import_throughput.py [--limit 1000] [--data ../shared/data/peopleart]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_metadata(dataset: Path, out: Path, limit: int | None) -> int:
    rows = list(csv.DictReader(open(dataset / "metadata.csv")))[:limit]
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
    return len(rows)


def run(threads: int, dataset: Path, metadata: Path) -> float:
    """Import in a child process with its own database and data directory; returns seconds."""
    import subprocess

    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **os.environ,
            "DEBUG": "1",
            "WORKBENCH_DATA_DIR": data_dir,
            "WORKBENCH_IMPORT_THREADS": str(threads),
        }
        env.pop("DATABASE_URL", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        code = (
            "import time, json; from pathlib import Path; from annotations.importer import import_collection;"
            f"t = time.perf_counter();"
            f"r = import_collection(Path({str(dataset)!r}), Path({str(metadata)!r}), None, 'bench');"
            "print(json.dumps({'seconds': time.perf_counter() - t, 'created': r.artworks_created}))"
        )
        out = subprocess.run(
            [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        import json

        result = json.loads(out.strip().splitlines()[-1])
        return result["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "peopleart")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    dataset = args.data.resolve()
    with tempfile.TemporaryDirectory() as work:
        metadata = Path(work) / "metadata.csv"
        count = write_metadata(dataset, metadata, args.limit)
        print(f"{count} images from {dataset}, {os.cpu_count()} CPU cores")
        baseline = run(1, dataset, metadata)
        print(f"baseline, 1 image thread : {baseline:7.1f} s  {count / baseline:7.1f} images/s")
        pooled = run(0, dataset, metadata)
        print(f"workbench, thread pool   : {pooled:7.1f} s  {count / pooled:7.1f} images/s")
        print(f"ratio (workbench / baseline): {baseline / pooled:.2f}x")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"peak memory of the import processes: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
