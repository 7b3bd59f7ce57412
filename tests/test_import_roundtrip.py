"""A good import, its idempotence, updates, and the morphograph round trip."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.core.management import call_command

from annotations.exporting import write_connections_csv
from annotations.importer import import_collection
from annotations.models import Artwork, Collection, Connection, ConnectionDecision, ImportRecord

from .conftest import SourceCollection, database_state, draw_picture, files_under, write_rows

pytestmark = pytest.mark.django_db


def run_import(source: SourceCollection, connections=True):
    return import_collection(
        source.images, source.metadata, source.connections if connections else None, "Test collection"
    )


def exported(history: bool = False) -> list[dict[str, str]]:
    buffer = io.StringIO()
    write_connections_csv(buffer, history=history)
    return list(csv.DictReader(io.StringIO(buffer.getvalue())))


def morphograph(rows: list[dict[str, str]]) -> set[tuple]:
    return {(r["uid"], frozenset((r["img1"], r["img2"])), r["type"], r["annotated"]) for r in rows}


def test_import_creates_artworks_files_and_connections(source, data_dir):
    report = run_import(source)
    assert (report.artworks_created, report.connections_added) == (6, 4)
    artwork = Artwork.objects.get(external_id="art-3")
    assert artwork.collection.name == "Test collection"
    assert (artwork.title, artwork.author, artwork.style, artwork.place) == (
        "Title 3",
        "Painter 0",
        "Baroque",
        "Venice",
    )
    assert (artwork.date_text, artwork.date_begin, artwork.date_end) == ("ca. 1503–1513", 1503, 1513)
    assert (artwork.width, artwork.height) == (120, 90)
    assert artwork.extra == {"inventory": "INV-003"}
    original = (source.images / "img" / "3.jpg").read_bytes()
    assert (data_dir / artwork.image_relpath).read_bytes() == original
    for size in ("grid", "viewer"):
        assert (data_dir / artwork.thumbnail_relpath(size)).stat().st_size > 0
    types = dict(
        ((c.artwork_a.external_id, c.artwork_b.external_id), c.type)
        for c in Connection.objects.select_related("artwork_a", "artwork_b")
    )
    assert types == {
        ("art-0", "art-1"): "POSITIVE",
        ("art-1", "art-2"): "POSITIVE",
        ("art-3", "art-4"): "DUPLICATE",
        ("art-0", "art-5"): "NEGATIVE",
    }
    assert not list((data_dir / "staging").glob("*")), "staging folder must be cleaned up"


def test_reimport_changes_nothing(source, data_dir):
    run_import(source)
    before_db, before_files = database_state(), files_under(data_dir)
    report = run_import(source)
    assert not report.changed_anything
    assert report.artworks_unchanged == 6
    assert report.connections_already_recorded == 4
    assert database_state() == before_db
    assert files_under(data_dir) == before_files


def test_changed_row_updates_the_artwork(source, data_dir):
    run_import(source)
    rows = source.metadata_rows(6)
    rows[2][2] = "A better title"
    write_rows(source.metadata, SourceCollection.METADATA_HEADER, rows)
    draw_picture(source.images / "img" / "4.jpg", seed=44, size=(200, 100))
    report = run_import(source, connections=False)
    assert (report.artworks_created, report.artworks_updated, report.artworks_unchanged) == (0, 2, 4)
    assert Artwork.objects.get(external_id="art-2").title == "A better title"
    changed = Artwork.objects.get(external_id="art-4")
    assert (changed.width, changed.height) == (200, 100)
    assert (data_dir / changed.thumbnail_relpath("grid")).exists()
    assert ImportRecord.objects.count() == 2


def test_history_of_a_pair_is_kept(source, data_dir):
    write_rows(
        source.connections,
        ["uid", "img1", "img2", "type", "annotated"],
        [
            ["L1", "art-0", "art-1", "POSITIVE", "2021-03-01T10:00:00+00:00"],
            ["L2", "art-1", "art-0", "NEGATIVE", "2022-05-01"],
        ],
    )
    run_import(source)
    connection = Connection.objects.get()
    assert connection.type == "NEGATIVE" and connection.latest.uid == "L2"
    assert list(ConnectionDecision.objects.order_by("id").values_list("uid", "type")) == [
        ("L1", "POSITIVE"),
        ("L2", "NEGATIVE"),
    ]
    before = database_state()
    run_import(source)  # the POSITIVE row must not come back on re-import
    assert database_state() == before
    assert [r["type"] for r in exported(history=True)] == ["POSITIVE", "NEGATIVE"]


def test_morphograph_round_trip_is_identity(source, data_dir, tmp_path):
    write_rows(
        source.connections,
        ["uid", "img1", "img2", "type", "annotated"],
        [
            ["u1", "art-0", "art-1", "POSITIVE", "2020-01-02T03:04:05+00:00"],
            ["u2", "art-2", "art-1", "POSITIVE", "2020-01-03T00:00:00+00:00"],
            ["", "art-3", "art-4", "DUPLICATE", ""],
            ["u4", "art-5", "art-0", "NEGATIVE", "2020-02-01T00:00:00+00:00"],
            ["u5", "art-2", "art-5", "SIMILAR", "2020-02-02T00:00:00+00:00"],
        ],
    )
    run_import(source)
    first_export = exported()
    out = tmp_path / "export.csv"
    call_command("export_connections", "--out", str(out))
    assert morphograph(list(csv.DictReader(open(out)))) == morphograph(first_export)

    # Into the same database: nothing changes.
    before = database_state()
    import_collection(source.images, source.metadata, out, "Test collection")
    assert database_state() == before

    # Into an empty database: the same connections, uids and timestamps come back.
    Connection.objects.all().delete()
    ConnectionDecision.objects.all().delete()
    ImportRecord.objects.all().delete()
    Artwork.objects.all().delete()
    Collection.objects.all().delete()
    report = import_collection(source.images, source.metadata, out, "Test collection")
    assert report.connections_added == 5
    assert morphograph(exported()) == morphograph(first_export)


def test_export_keeps_provenance(source, data_dir):
    run_import(source)
    rows = exported()
    assert {r["source"] for r in rows} == {"import"}
    assert {r["import_file"] for r in rows} == {"connections.csv"}
    assert all(r["split1"] and r["split2"] for r in rows if r["type"] in ("POSITIVE", "DUPLICATE"))


def test_reimport_does_not_undo_a_later_decision(source, data_dir):
    """A file row that matched the pair's state when imported must not come back after a historian
    changes the pair (its uid is recorded even though it changed nothing)."""
    from annotations.connections import Statement, apply_statements

    write_rows(source.connections, ["img1", "img2", "type"], [["art-2", "art-3", "SIMILAR"]])
    run_import(source, connections=False)
    art = {a.external_id: a for a in Artwork.objects.all()}
    apply_statements([Statement(art["art-2"].pk, art["art-3"].pk, "SIMILAR")], source="user")
    run_import(source)  # says SIMILAR too: recorded, nothing changes
    apply_statements([Statement(art["art-2"].pk, art["art-3"].pk, "NEGATIVE")], source="user")
    report = run_import(source)
    assert report.connections_added == 0
    assert Connection.objects.get().type == "NEGATIVE"


def test_cancel_after_commit_keeps_the_files(source, data_dir):
    from jobs.progress import JobCancelled

    def cancel_at_the_end(fraction: float, message: str = "") -> None:
        if fraction >= 1.0:
            raise JobCancelled("too late: the import has committed")

    with pytest.raises(JobCancelled):
        import_collection(source.images, source.metadata, None, "Test collection", progress=cancel_at_the_end)
    artworks = list(Artwork.objects.all())
    assert len(artworks) == 6
    for artwork in artworks:
        assert (data_dir / artwork.image_relpath).is_file()
        assert (data_dir / artwork.thumbnail_relpath("grid")).is_file()


@pytest.mark.django_db
def test_reimport_never_writes_into_committed_files(source: SourceCollection, data_dir: Path):
    """Staged files may be hard links to committed ones: a second row of the same image must not open such
    a link for writing (a torn image if the import were killed there)."""
    import_collection(source.images, source.metadata, source.connections, "Test collection")
    committed = {path: path.stat().st_mtime_ns for path in data_dir.rglob("*.jpg")}
    rows = source.metadata_rows(6)
    rows[5][1] = rows[4][1]  # two rows, one image
    write_rows(source.metadata, SourceCollection.METADATA_HEADER, rows)
    import_collection(source.images, source.metadata, source.connections, "Test collection")
    assert {path: path.stat().st_mtime_ns for path in committed} == committed
