"""`import_collection`: metadata + images (+ connections) → artworks and decisions, all or nothing.

Phase 1 (no writes to the database): read both CSV files, check every row and every image
(decoded in full, in parallel threads; PIL releases the GIL while decoding), and stage the image
files and their thumbnails in a private folder. Every problem is collected with file and line.
Phase 2, only when there is no problem: one transaction writes the collection, the artworks and
the decisions; staged files are moved to their content-addressed places first, and the ones that
were new are removed again if the transaction fails. A cancelled or failed import thus leaves
the database and the data directory as they were.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction

from jobs.progress import ProgressCallback, no_progress
from workbench import paths
from workbench.paths import image_relpath, thumbnail_relpath

from .connections import Statement, apply_statements, chunks, derived_uid
from .csvformats import ConnectionRow, MetadataRow, Problem, read_connections, read_metadata
from .images import ImageInfo, ImageProblem, process_image
from .models import Artwork, Collection, ConnectionDecision, DecisionSource, ImportRecord, canonical_pair
from .storage import place_file

ARTWORK_FIELDS = (
    "title",
    "author",
    "date_text",
    "date_begin",
    "date_end",
    "style",
    "genre",
    "place",
    "url",
    "iiif_url",
)
MAX_REPORTED_PROBLEMS = 10_000


class ImportFailed(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.message))
        super().__init__(f"{len(problems)} problem(s); nothing was imported")

    @property
    def result(self) -> dict:
        return {
            "problems": [str(problem) for problem in self.problems[:1000]],
            "problem_count": len(self.problems),
        }

    def report(self, limit: int = 200) -> str:
        lines = [str(problem) for problem in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more")
        return "\n".join(lines)


@dataclass
class ImportReport:
    collection: str
    artworks_created: int = 0
    artworks_updated: int = 0
    artworks_unchanged: int = 0
    connections_added: int = 0
    connections_redundant: int = 0
    connections_already_recorded: int = 0
    split_changes: int = 0
    moved_out_of_train: int = 0
    new_files: int = 0
    import_record_id: int | None = None

    @property
    def changed_anything(self) -> bool:
        return bool(self.artworks_created or self.artworks_updated or self.connections_added)

    @property
    def summary(self) -> str:
        if not self.changed_anything:
            return f"{self.collection}: nothing to change ({self.artworks_unchanged} artworks up to date)"
        return (
            f"{self.collection}: {self.artworks_created} artworks created, {self.artworks_updated} updated, "
            f"{self.artworks_unchanged} unchanged; {self.connections_added} connection decisions added "
            f"({self.connections_redundant + self.connections_already_recorded} already known)"
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "summary": self.summary}


@dataclass
class StagedImage:
    row: MetadataRow
    info: ImageInfo
    files: dict[str, Path] = field(default_factory=dict)  # final relpath -> staged path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stage_image(row: MetadataRow, images_dir: Path, staging: Path, data_dir: Path) -> StagedImage:
    processed = process_image(
        images_dir / row.path, settings.MAX_IMAGE_PIXELS, settings.MAX_IMAGE_BYTES, settings.THUMBNAIL_SIZES
    )
    info = processed.info
    staged = StagedImage(row=row, info=info)
    wanted = {image_relpath(info.sha256, info.ext): processed.data}
    for size, data in processed.thumbnails.items():
        wanted[thumbnail_relpath(info.sha256, size)] = data
    for relpath, data in wanted.items():
        if (data_dir / relpath).exists():
            continue  # content-addressed: same content, same file
        target = staging / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        staged.files[relpath] = target
    return staged


def stage_images(
    rows: list[MetadataRow],
    images_dir: Path,
    staging: Path,
    data_dir: Path,
    problems: list[Problem],
    metadata_name: str,
    progress: Callable[[int, int], None],
) -> list[StagedImage]:
    staged: list[StagedImage] = []
    workers = settings.IMPORT_THREADS or max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="import-image") as pool:
        futures = {pool.submit(stage_image, row, images_dir, staging, data_dir): row for row in rows}
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                row = futures[future]
                try:
                    staged.append(future.result())
                except ImageProblem as exc:
                    problems.append(Problem(metadata_name, row.line, f"{row.path}: {exc}"))
                progress(done, len(rows))
        except BaseException:
            # A cancel must not wait for every queued image to be decoded.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return staged


def check_ids_and_uids(
    metadata_rows: list[MetadataRow],
    connection_rows: list[ConnectionRow],
    collection_name: str,
    metadata_name: str,
    connections_name: str,
    problems: list[Problem],
) -> dict[str, Artwork]:
    """Existing artworks the files talk about, with problems for ids or uids that clash."""
    wanted = (
        {row.id for row in metadata_rows}
        | {c.img1 for c in connection_rows}
        | {c.img2 for c in connection_rows}
    )
    existing: dict[str, Artwork] = {}
    for part in chunks(sorted(wanted)):
        for artwork in Artwork.objects.filter(external_id__in=part).select_related("collection"):
            existing[artwork.external_id] = artwork
    for row in metadata_rows:
        known = existing.get(row.id)
        if known and known.collection.name != collection_name:
            problems.append(
                Problem(
                    metadata_name,
                    row.line,
                    f"id {row.id!r} already belongs to collection {known.collection.name!r}",
                )
            )
    in_file = {row.id for row in metadata_rows}
    for conn in connection_rows:
        for column, value in (("img1", conn.img1), ("img2", conn.img2)):
            if value not in in_file and value not in existing:
                problems.append(
                    Problem(
                        connections_name,
                        conn.line,
                        f"unknown id in {column}: {value!r} (not in the metadata file nor in the database)",
                    )
                )
    uids = [c.uid for c in connection_rows if c.uid]
    recorded: dict[str, ConnectionDecision] = {}
    for part in chunks(uids):
        for decision in ConnectionDecision.objects.filter(uid__in=part).select_related(
            "artwork_a", "artwork_b"
        ):
            recorded[decision.uid] = decision
    for conn in connection_rows:
        decision = recorded.get(conn.uid)
        if decision is None:
            continue
        same_pair = {decision.artwork_a.external_id, decision.artwork_b.external_id} == {conn.img1, conn.img2}
        if not same_pair or decision.type != conn.type:
            problems.append(
                Problem(
                    connections_name,
                    conn.line,
                    f"uid {conn.uid!r} is already recorded for a different decision "
                    f"({decision.artwork_a.external_id} – {decision.artwork_b.external_id} {decision.type})",
                )
            )
    return existing


def import_collection(
    images_dir: Path,
    metadata_csv: Path,
    connections_csv: Path | None = None,
    collection_name: str | None = None,
    *,
    user=None,
    job=None,
    progress: ProgressCallback = no_progress,
    log: Callable[[str], None] = lambda line: None,
) -> ImportReport:
    images_dir, metadata_csv = Path(images_dir), Path(metadata_csv)
    connections_csv = Path(connections_csv) if connections_csv else None
    collection_name = (collection_name or images_dir.resolve().name).strip()
    data_dir: Path = paths.root()
    problems: list[Problem] = []
    if not images_dir.is_dir():
        problems.append(Problem(str(images_dir), None, "images folder not found"))
    if not collection_name:
        problems.append(Problem(str(metadata_csv), None, "collection name is empty"))

    progress(0.0, "Reading CSV files")
    metadata_rows, metadata_problems = read_metadata(metadata_csv)
    problems += metadata_problems
    connection_rows: list[ConnectionRow] = []
    if connections_csv is not None:
        connection_rows, connection_problems = read_connections(connections_csv)
        problems += connection_problems
    existing = check_ids_and_uids(
        metadata_rows, connection_rows, collection_name, str(metadata_csv), str(connections_csv), problems
    )
    log(f"read {len(metadata_rows)} artworks and {len(connection_rows)} connections")

    staging = data_dir / "staging" / f"import-{uuid.uuid4().hex}"
    staging.mkdir(parents=True, exist_ok=True)
    placed: list[Path] = []
    try:
        rows_with_paths = [row for row in metadata_rows if row.path] if images_dir.is_dir() else []

        def on_image(done: int, total: int) -> None:
            progress(0.02 + 0.83 * done / max(total, 1), f"Checked {done}/{total} images")

        staged = stage_images(
            rows_with_paths, images_dir, staging, data_dir, problems, str(metadata_csv), on_image
        )
        if problems:
            raise ImportFailed(problems[:MAX_REPORTED_PROBLEMS])

        progress(0.86, "Writing to the database")
        with transaction.atomic():
            report = ImportReport(collection=collection_name)
            collection, _ = Collection.objects.get_or_create(name=collection_name)
            record = ImportRecord(
                collection=collection,
                metadata_file=str(metadata_csv),
                metadata_sha256=file_sha256(metadata_csv),
                connections_file=str(connections_csv or ""),
                connections_sha256=file_sha256(connections_csv) if connections_csv else "",
                created_by=user,
                job=job,
            )
            for item in staged:
                for relpath, path in item.files.items():
                    if place_file(path, data_dir / relpath):
                        placed.append(data_dir / relpath)
            report.new_files = len(placed)
            artworks = write_artworks(staged, collection, existing, report)
            progress(0.93, "Recording connections")
            statements = build_statements(connection_rows, artworks, str(connections_csv))
            if statements:
                record.save()
            applied = apply_statements(
                statements,
                source=DecisionSource.IMPORT,
                user=user,
                import_record=record,
                record_redundant=True,
            )
            report.connections_added = applied.added
            report.connections_redundant = applied.redundant
            report.connections_already_recorded = applied.already_recorded
            report.split_changes = len(applied.split_changes)
            report.moved_out_of_train = sum(1 for c in applied.split_changes if c.old == "train")
            if report.changed_anything or applied.appended:
                record.counts = report.as_dict()
                record.save()
                report.import_record_id = record.pk
            elif record.pk:
                record.delete()
        # Committed: the placed files belong to artworks now and must survive whatever follows.
        placed = []
        progress(1.0, report.summary)
        log(report.summary)
        return report
    except BaseException:
        for path in placed:
            path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_artworks(
    staged: list[StagedImage], collection: Collection, existing: dict[str, Artwork], report: ImportReport
) -> dict[str, Artwork]:
    to_create: list[Artwork] = []
    to_update: list[Artwork] = []
    update_fields: set[str] = set()
    for item in sorted(staged, key=lambda s: s.row.line):
        row, info = item.row, item.info
        values = {
            **{name: row.fields[name] if row.fields[name] is not None else None for name in ARTWORK_FIELDS},
            "image_sha256": info.sha256,
            "image_ext": info.ext,
            "width": info.width,
            "height": info.height,
            "source_path": row.path,
            "extra": row.extra,
        }
        artwork = existing.get(row.id)
        if artwork is None:
            to_create.append(Artwork(external_id=row.id, collection=collection, **values))
            continue
        changed = [name for name, value in values.items() if getattr(artwork, name) != value]
        if changed:
            for name in changed:
                setattr(artwork, name, values[name])
            update_fields.update(changed)
            to_update.append(artwork)
        else:
            report.artworks_unchanged += 1
    Artwork.objects.bulk_create(to_create, batch_size=500)
    if to_update:
        from django.utils import timezone

        now = timezone.now()
        for artwork in to_update:
            artwork.updated_at = now
        Artwork.objects.bulk_update(to_update, sorted(update_fields | {"updated_at"}), batch_size=500)
    report.artworks_created, report.artworks_updated = len(to_create), len(to_update)
    by_id = dict(existing)
    wanted = [a.external_id for a in to_create]
    for part in chunks(wanted):
        for artwork in Artwork.objects.filter(external_id__in=part):
            by_id[artwork.external_id] = artwork
    return by_id


def build_statements(
    rows: list[ConnectionRow], artworks: dict[str, Artwork], file_name: str
) -> list[Statement]:
    statements = []
    for row in rows:
        first, second = artworks[row.img1], artworks[row.img2]
        canonical_pair(first.pk, second.pk)  # self-links were refused during validation
        context = {"file": os.path.basename(file_name), "line": row.line}
        if row.extra:
            context["columns"] = row.extra
        statements.append(
            Statement(
                first=first.pk,
                second=second.pk,
                type=row.type,
                uid=row.uid or derived_uid(row.img1, row.img2, row.type, row.annotated),
                annotated_at=row.annotated,
                context=context,
            )
        )
    return statements
