"""Import from IIIF (issue 15, item 1): a manifest or a collection of manifests becomes a collection of
artworks, one per canvas (or per manifest), through the ordinary importer: all-or-nothing like any import.

The images are fetched first, into a download folder of their own (`paths.iiif_download_folder`, keyed by
the source and the size): at the given size from each canvas's Image API service, else the image the manifest
names; a few at a time, each with a timeout and retries with back-off (`iiif_source.Fetcher`). A failure
anywhere writes nothing to the database and keeps what was downloaded, so running the same command again
fetches only what is missing. Then a metadata CSV is written beside the images and `import_collection`
checks and imports it all; the manifest, canvas and service ids stay on each artwork for provenance.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from annotations.storage import atomic_write_bytes
from jobs.progress import ProgressCallback, no_progress
from workbench import paths

from .csvformats import Problem
from .iiif_source import Canvas, Collection, Fetcher, IIIFError, Manifest, image_request, parse
from .importer import ImportFailed, ImportReport, import_collection

DEFAULT_SIZE = 1600
# Requests to one server at a time: polite to a museum's image server, and enough to fill a slow link.
DEFAULT_CONCURRENCY = 4
# A collection may nest collections; this many manifests at most, and never one twice (cycles).
MAX_MANIFESTS = 2000
EXTERNAL_ID_MAX = 255


def download_folder(source: str, size: int) -> Path:
    key = hashlib.sha256(f"{source}\n{size}".encode()).hexdigest()[:24]
    return paths.root() / "iiif-downloads" / key


def resolve_manifests(location: str, fetcher: Fetcher, log: Callable[[str], None]) -> list[Manifest]:
    """The manifests at `location` (a manifest, or a collection of manifests and collections), in order."""
    manifests: list[Manifest] = []
    seen: set[str] = set()
    pending = [location]
    while pending:
        current = pending.pop(0)
        if current in seen:
            continue
        seen.add(current)
        document = parse(fetcher.document(current), current)
        if isinstance(document, Collection):
            log(f"collection {document.label or document.collection_id}: {len(document.manifests)} members")
            pending = [member for member in document.manifests if member not in seen] + pending
            continue
        manifests.append(document)
        if len(manifests) > MAX_MANIFESTS:
            raise IIIFError(f"{location}: more than {MAX_MANIFESTS} manifests")
    return manifests


def external_id(canvas_id: str) -> str:
    """The canvas id names the artwork; a very long one is shortened with its hash (still stable)."""
    if len(canvas_id) <= EXTERNAL_ID_MAX:
        return canvas_id
    return f"{canvas_id[: EXTERNAL_ID_MAX - 26]}…#{hashlib.sha256(canvas_id.encode()).hexdigest()[:24]}"


def rows_of(manifests: list[Manifest], per_manifest: bool) -> list[tuple[Manifest, Canvas]]:
    return [
        (manifest, canvas)
        for manifest in manifests
        for canvas in (manifest.canvases[:1] if per_manifest else manifest.canvases)
    ]


def fetch_images(
    rows: list[tuple[Manifest, Canvas]],
    folder: Path,
    size: int,
    fetcher: Fetcher,
    concurrency: int,
    progress: ProgressCallback,
    log: Callable[[str], None],
) -> tuple[dict[str, str], list[Problem]]:
    """canvas id → file name in `folder` for every image now there; a problem per canvas that failed."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {
        canvas.canvas_id: f"{hashlib.sha256(canvas.canvas_id.encode()).hexdigest()[:32]}.img"
        for _, canvas in rows
    }
    present = {cid: name for cid, name in names.items() if (folder / name).is_file()}
    todo = [canvas for _, canvas in rows if canvas.canvas_id not in present]
    if present:
        log(f"{len(present)} images already downloaded by an earlier try, {len(todo)} to fetch")

    def fetch(canvas: Canvas) -> tuple[Canvas, str | None]:
        problems = []
        for url in image_request(canvas, size):
            try:
                data = fetcher.get(url)
            except IIIFError as exc:
                problems.append(str(exc))
                continue
            # Written whole or not at all: a killed import leaves no half image to be taken for a whole one.
            atomic_write_bytes(folder / names[canvas.canvas_id], data)
            return canvas, None
        return canvas, "; ".join(problems) or "no image URL"

    failures: list[Problem] = []
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [pool.submit(fetch, canvas) for canvas in todo]
        try:
            for future in as_completed(futures):
                canvas, problem = future.result()
                done += 1
                if problem is None:
                    present[canvas.canvas_id] = names[canvas.canvas_id]
                else:
                    failures.append(Problem(canvas.canvas_id, None, f"image not fetched: {problem}"))
                progress(0.05 + 0.6 * done / max(len(todo), 1), f"fetched {done}/{len(todo)} images")
        except BaseException:
            for future in futures:  # cancelled: stop what has not started, then leave
                future.cancel()
            raise
    return present, failures


def import_iiif(
    location: str,
    collection_name: str | None = None,
    size: int = DEFAULT_SIZE,
    per_manifest: bool = False,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    fetcher: Fetcher | None = None,
    user=None,
    job=None,
    progress: ProgressCallback = no_progress,
    log: Callable[[str], None] = lambda line: None,
) -> ImportReport:
    """Import the artworks of the IIIF manifest or collection at `location` (a URL or a file)."""
    if not 64 <= size <= 10000:
        raise ImportFailed([Problem(location, None, f"size must be from 64 to 10,000 pixels, got {size}")])
    fetcher = fetcher or Fetcher()
    progress(0.0, "reading the manifests")
    try:
        manifests = resolve_manifests(location, fetcher, log)
    except IIIFError as exc:
        raise ImportFailed([Problem(location, None, str(exc))]) from None
    rows = rows_of(manifests, per_manifest)
    name = collection_name or (manifests[0].label if len(manifests) == 1 else "") or "IIIF import"
    log(f"{len(manifests)} manifests, {len(rows)} artworks into collection {name!r}")
    folder = download_folder(location, size)
    present, failures = fetch_images(rows, folder / "images", size, fetcher, concurrency, progress, log)
    if failures:
        log(f"{len(failures)} images could not be fetched; nothing imported, {len(present)} kept for a retry")
        raise ImportFailed(failures)
    metadata = folder / "metadata.csv"
    write_metadata(metadata, rows, present)
    report = import_collection(
        folder / "images",
        metadata,
        None,
        name,
        user=user,
        job=job,
        progress=lambda fraction, message: progress(0.65 + 0.35 * fraction, message),
        log=log,
    )
    shutil.rmtree(folder, ignore_errors=True)  # imported: the images now live in the data folder
    return report


def write_metadata(target: Path, rows: list[tuple[Manifest, Canvas]], files: dict[str, str]) -> None:
    """The import's metadata CSV: the known columns, then the provenance and every manifest metadata pair
    seen (one column each, empty where a manifest has none)."""
    extra_names: list[str] = []
    records = []
    for manifest, canvas in rows:
        pairs = {**manifest.metadata, **canvas.metadata}
        date = pairs.pop("navDate", "")[:10]
        if not date:
            # No navDate (most 2.1 manifests): a "Date" pair ("ca. 1520", "1500-1510") is the date.
            named = next((key for key in pairs if key.strip().lower() == "date"), None)
            date = pairs.pop(named) if named else ""
        record = {
            "id": external_id(canvas.canvas_id),
            "path": files[canvas.canvas_id],
            "title": canvas.label
            if len(manifest.canvases) > 1 and canvas.label
            else manifest.label or canvas.label,
            "date": date,
            "iiif_url": canvas.service_id or canvas.image_url,
            "iiif_manifest": manifest.manifest_id,
            "iiif_canvas": canvas.canvas_id,
        }
        for key, value in pairs.items():
            column = key.strip().lower().replace(" ", "_")
            if column in record or column in ("id", "path"):
                column = f"iiif_{column}"
            record[column] = value
            if column not in extra_names:
                extra_names.append(column)
        records.append(record)
    header = ["id", "path", "title", "date", "iiif_url", "iiif_manifest", "iiif_canvas", *extra_names]
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, restval="")
        writer.writeheader()
        writer.writerows(records)
