"""`import_collection`: metadata + images (+ connections) → artworks and decisions, all or nothing.

Phase 1 (no writes to the database): read both CSV files, check every row (lengths and NUL bytes
included) and every image (decoded in full, in parallel threads; PIL releases the GIL while decoding;
symbolic links leading out of the images folder refused before opening), and stage the image files and
their thumbnails in a private folder, always, even when their content is already in place. Every
problem is collected with file and line.
Phase 2, only when there is no problem, under a lock that one import holds at a time: check the ids
again (another import may have taken some meanwhile), move the staged files to their content-addressed
places, and write the collection, the artworks and the decisions in one transaction; the files that
were new are removed again if that fails. A cancelled or failed import thus leaves the database and the
data directory as they were, and never removes a file that another import committed.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from jobs.progress import ProgressCallback, no_progress
from workbench import paths
from workbench.paths import image_relpath, thumbnail_relpath

from .connections import Statement, apply_statements, chunks, derived_uid
from .csvformats import ConnectionRow, MetadataRow, Problem, read_connections, read_metadata
from .images import ImageInfo, ImageProblem, process_image
from .models import (
    Artwork,
    Collection,
    ConnectionDecision,
    DecisionSource,
    ImportRecord,
    canonical_pair,
)
from .storage import exclusive_lock, locked_folder, place_file, remove_abandoned, stage_bytes

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


def source_file(images_dir: Path, relpath: str) -> Path:
    """The real file behind `relpath`, refused when a symbolic link leads outside the images folder.

    Checked before anything is opened: a link to /etc/passwd or to another user's folder must not be
    read, even to find out it is not an image (issue 10.6). Links that stay inside the folder are fine.
    """
    folder = images_dir.resolve()
    real = (images_dir / relpath).resolve()
    if not real.is_relative_to(folder):
        raise ImageProblem(
            "a symbolic link to a file outside the images folder; copy the file into the folder instead"
        )
    return real


def stage_image(row: MetadataRow, images_dir: Path, staging: Path, data_dir: Path) -> StagedImage:
    processed = process_image(
        source_file(images_dir, row.path),
        settings.MAX_IMAGE_PIXELS,
        settings.MAX_IMAGE_BYTES,
        settings.THUMBNAIL_SIZES,
    )
    info = processed.info
    staged = StagedImage(row=row, info=info)
    wanted = {image_relpath(info.sha256, info.ext): processed.data}
    for size, data in processed.thumbnails.items():
        wanted[thumbnail_relpath(info.sha256, size)] = data
    for relpath, data in wanted.items():
        stage_bytes(staging / relpath, data, existing=data_dir / relpath)
        staged.files[relpath] = staging / relpath
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

    check_lengths(metadata_rows, collection_name, str(metadata_csv), problems)
    remove_abandoned_staging()
    with locked_folder(paths.import_staging(uuid.uuid4().hex)) as staging:
        rows_with_paths = [row for row in metadata_rows if row.path] if images_dir.is_dir() else []

        def on_image(done: int, total: int) -> None:
            progress(0.02 + 0.83 * done / max(total, 1), f"Checked {done}/{total} images")

        staged = stage_images(
            rows_with_paths, images_dir, staging, data_dir, problems, str(metadata_csv), on_image
        )
        if problems:
            raise ImportFailed(problems[:MAX_REPORTED_PROBLEMS])

        # One import at a time places files and writes the database. Without it, an import that fails
        # here could remove files that a concurrent import of the same images has just committed
        # (issue 10.1), and ids checked above could have been taken meanwhile (issue 10.8).
        with exclusive_lock(
            paths.import_lock_file(), waiting=lambda: progress(0.85, "Waiting for another import to finish")
        ):
            existing = check_again(
                metadata_rows, connection_rows, collection_name, metadata_csv, connections_csv, existing
            )
            report = write_import(
                staged,
                metadata_rows,
                connection_rows,
                existing,
                collection_name,
                data_dir,
                metadata_csv,
                connections_csv,
                user,
                job,
                progress,
            )
        progress(1.0, report.summary)
        log(report.summary)
        return report


# A staging folder is locked by its import (`storage.locked_folder`); one whose lock nobody holds any more
# and that has not changed for this long belongs to a killed import.
ABANDONED_STAGING_AGE_SECONDS = 60


def remove_abandoned_staging(min_age_seconds: float = ABANDONED_STAGING_AGE_SECONDS) -> list[Path]:
    """Remove the staging folders of imports that died, and return them.

    An import removes its own folder when it ends, which a worker killed mid-import (SIGKILL, the OOM killer,
    a lost container) never does: without this, each such import would leave a copy of its images behind
    for good. The kernel released the dead import's lock on its folder; a running import's lock stays, and
    its folder is left alone, whichever process or container runs it (on one machine: a data folder shared
    between machines needs a file system that honours flock, as NFSv4 does).
    """
    root = paths.staging_root()
    return remove_abandoned(sorted(root.glob("import-*")) if root.is_dir() else [], min_age_seconds)


def check_lengths(
    rows: list[MetadataRow], collection_name: str, metadata_name: str, problems: list[Problem]
) -> None:
    """Values longer than their database column: PostgreSQL refuses them with a raw DataError naming no
    line, SQLite stores them silently (issue 10.4). Reported like every other problem instead."""
    limit = {name: Artwork._meta.get_field(name).max_length for name in ("external_id", "source_path")}
    limit.update({name: Artwork._meta.get_field(name).max_length for name in ARTWORK_FIELDS})
    collection_limit = Collection._meta.get_field("name").max_length
    if len(collection_name) > collection_limit:
        problems.append(
            Problem(
                metadata_name,
                None,
                f"collection name is {len(collection_name)} characters long; the limit is {collection_limit}",
            )
        )
    for row in rows:
        values = {"external_id": row.id, "source_path": row.path, **row.fields}
        for name, value in values.items():
            if isinstance(value, str) and limit.get(name) and len(value) > limit[name]:
                column = {"external_id": "id", "source_path": "path", "date_text": "date"}.get(name, name)
                problems.append(
                    Problem(
                        metadata_name,
                        row.line,
                        f"{column} is {len(value):,} characters long; the limit is {limit[name]:,}",
                    )
                )


def check_again(
    metadata_rows: list[MetadataRow],
    connection_rows: list[ConnectionRow],
    collection_name: str,
    metadata_csv: Path,
    connections_csv: Path | None,
    checked: dict[str, Artwork],
) -> dict[str, Artwork]:
    """The id and uid checks once more, now that no other import can write: a concurrent import may have
    created some of these ids since the files were checked. Ids it created in this collection are
    updated like any re-imported artwork; ids it took for another collection fail the import, naming the
    import that won."""
    problems: list[Problem] = []
    existing = check_ids_and_uids(
        metadata_rows, connection_rows, collection_name, str(metadata_csv), str(connections_csv), problems
    )
    if problems:
        raise ImportFailed([with_winner(problem, existing, checked) for problem in problems])
    return existing


def with_winner(problem: Problem, existing: dict[str, Artwork], checked: dict[str, Artwork]) -> Problem:
    """Say which import took an id that was free when this import checked its files."""
    for external_id, artwork in existing.items():
        if external_id in checked or f"id {external_id!r} already belongs" not in problem.message:
            continue
        winner = (
            ImportRecord.objects.filter(collection=artwork.collection, created_at__gte=artwork.created_at)
            .order_by("pk")
            .first()
        )
        by = "another import" if winner is None else f"import #{winner.pk}"
        if winner is not None and winner.job_id:
            by += f" (job #{winner.job_id})"
        return Problem(
            problem.file,
            problem.line,
            f"{problem.message}: {by} created it while this import was checking its files; "
            "nothing was imported",
        )
    return problem


def write_import(
    staged: list[StagedImage],
    metadata_rows: list[MetadataRow],
    connection_rows: list[ConnectionRow],
    existing: dict[str, Artwork],
    collection_name: str,
    data_dir: Path,
    metadata_csv: Path,
    connections_csv: Path | None,
    user,
    job,
    progress: ProgressCallback,
) -> ImportReport:
    """Phase 2, under the import lock: place the staged files, then one transaction. Files this import
    placed are removed again if anything fails, which is safe only because no other import can have
    committed rows using them meanwhile (the lock)."""
    placed: list[Path] = []
    try:
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
        return report
    except IntegrityError as exc:
        # Another writer than an import (the web, an admin) took an id or uid after `check_again`.
        remove(placed)
        problems: list[Problem] = []
        check_ids_and_uids(
            metadata_rows, connection_rows, collection_name, str(metadata_csv), str(connections_csv), problems
        )
        raise ImportFailed(
            problems or [Problem(str(metadata_csv), None, f"the database refused the import: {exc}")]
        ) from None
    except BaseException:
        remove(placed)
        raise


def remove(files: list[Path]) -> None:
    for path in files:
        path.unlink(missing_ok=True)


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
