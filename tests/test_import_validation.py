"""Every bad input is reported with file and line, and leaves the database and files unchanged."""

from __future__ import annotations

import pytest

from annotations.importer import ImportFailed, import_collection
from annotations.models import Artwork

from .conftest import SourceCollection, database_state, draw_picture, files_under, write_rows

pytestmark = pytest.mark.django_db


def run_import(source: SourceCollection, **kwargs):
    return import_collection(source.images, source.metadata, source.connections, "Test collection", **kwargs)


def assert_fails_unchanged(
    source: SourceCollection, data_dir, *expected: tuple[str, int | None, str]
) -> ImportFailed:
    before_db, before_files = database_state(), files_under(data_dir)
    with pytest.raises(ImportFailed) as failure:
        run_import(source)
    assert database_state() == before_db
    assert files_under(data_dir) == before_files
    for file_name, line, fragment in expected:
        matching = [
            p
            for p in failure.value.problems
            if p.file.endswith(file_name) and p.line == line and fragment in p.message
        ]
        assert matching, f"no problem {file_name}:{line} {fragment!r} in:\n{failure.value.report()}"
    return failure.value


@pytest.fixture
def imported_once(source: SourceCollection, data_dir):
    """The collection imported, so that bad re-imports must also leave existing data alone."""
    run_import(source)
    return source


def test_missing_image(imported_once, data_dir):
    (imported_once.images / "img" / "2.jpg").unlink()
    assert_fails_unchanged(imported_once, data_dir, ("metadata.csv", 4, "image file not found"))


def test_unreadable_image_path_is_a_folder(imported_once, data_dir):
    (imported_once.images / "img" / "2.jpg").unlink()
    (imported_once.images / "img" / "2.jpg").mkdir()
    assert_fails_unchanged(imported_once, data_dir, ("metadata.csv", 4, "not a file"))


def test_not_an_image(imported_once, data_dir):
    (imported_once.images / "img" / "1.jpg").write_text("this is a text file, not a JPEG")
    assert_fails_unchanged(imported_once, data_dir, ("metadata.csv", 3, "not an image"))


def test_truncated_image(imported_once, data_dir):
    path = imported_once.images / "img" / "3.jpg"
    draw_picture(path, seed=99, size=(400, 300))
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    assert_fails_unchanged(imported_once, data_dir, ("metadata.csv", 5, "corrupt or truncated"))


def test_image_over_pixel_limit(imported_once, data_dir, settings):
    settings.MAX_IMAGE_PIXELS = 200 * 200
    draw_picture(imported_once.images / "img" / "4.jpg", seed=4, size=(300, 200))
    assert_fails_unchanged(imported_once, data_dir, ("metadata.csv", 6, "over the limit of 40,000"))


def test_image_over_byte_limit(imported_once, data_dir, settings):
    settings.MAX_IMAGE_BYTES = 100
    assert_fails_unchanged(imported_once, data_dir, ("metadata.csv", 2, "over the limit of 100 bytes"))


def test_duplicate_id(imported_once, data_dir):
    rows = imported_once.metadata_rows(6)
    rows[4][0] = "art-1"
    write_rows(imported_once.metadata, SourceCollection.METADATA_HEADER, rows)
    assert_fails_unchanged(
        imported_once, data_dir, ("metadata.csv", 6, "duplicate id 'art-1' (first on line 3)")
    )


def test_id_of_another_collection(imported_once, data_dir):
    before = database_state()
    with pytest.raises(ImportFailed) as failure:
        import_collection(imported_once.images, imported_once.metadata, None, "Another collection")
    assert "already belongs to collection 'Test collection'" in failure.value.report()
    assert database_state() == before


def test_unknown_id_in_connection(imported_once, data_dir):
    write_rows(
        imported_once.connections,
        ["img1", "img2", "type"],
        [["art-0", "art-1", "POSITIVE"], ["art-0", "nope", "POSITIVE"]],
    )
    assert_fails_unchanged(imported_once, data_dir, ("connections.csv", 3, "unknown id in img2: 'nope'"))


def test_self_link(imported_once, data_dir):
    write_rows(imported_once.connections, ["img1", "img2", "type"], [["art-2", "art-2", "POSITIVE"]])
    assert_fails_unchanged(imported_once, data_dir, ("connections.csv", 2, "self-link"))


def test_unknown_type(imported_once, data_dir):
    write_rows(imported_once.connections, ["img1", "img2", "type"], [["art-2", "art-3", "MAYBE"]])
    assert_fails_unchanged(imported_once, data_dir, ("connections.csv", 2, "unknown type 'MAYBE'"))


def test_missing_metadata_column(imported_once, data_dir):
    write_rows(imported_once.metadata, ["id", "title"], [["art-0", "x"]])
    assert_fails_unchanged(imported_once, data_dir, ("metadata.csv", 1, "missing required column(s): path"))


def test_missing_connection_column(imported_once, data_dir):
    write_rows(imported_once.connections, ["img1", "img2"], [["art-0", "art-1"]])
    assert_fails_unchanged(
        imported_once, data_dir, ("connections.csv", 1, "missing required column(s): type")
    )


def test_row_with_wrong_field_count(imported_once, data_dir):
    with open(imported_once.connections, "a") as handle:
        handle.write("art-0,art-2,POSITIVE,extra\n")
    assert_fails_unchanged(
        imported_once, data_dir, ("connections.csv", 6, "row has 4 fields but the header has 3")
    )


def test_not_utf8(imported_once, data_dir):
    imported_once.metadata.write_bytes(imported_once.metadata.read_bytes() + b"art-9,img/9.jpg,Caf\xe9\n")
    assert_fails_unchanged(imported_once, data_dir, ("metadata.csv", 8, "not valid UTF-8 text (byte 0xe9)"))


def test_empty_file(imported_once, data_dir):
    imported_once.connections.write_text("")
    assert_fails_unchanged(imported_once, data_dir, ("connections.csv", 1, "empty"))


def test_path_outside_images_folder(imported_once, data_dir):
    rows = imported_once.metadata_rows(6)
    rows[0][1] = "../metadata.csv"
    write_rows(imported_once.metadata, SourceCollection.METADATA_HEADER, rows)
    assert_fails_unchanged(imported_once, data_dir, ("metadata.csv", 2, "must be relative and stay inside"))


def test_bad_dates_and_timestamps(imported_once, data_dir):
    header = [*SourceCollection.METADATA_HEADER, "date_begin"]
    rows = [[*row, "16th"] for row in imported_once.metadata_rows(6)]
    write_rows(imported_once.metadata, header, rows)
    write_rows(
        imported_once.connections,
        ["img1", "img2", "type", "annotated"],
        [["art-0", "art-1", "POSITIVE", "yesterday"]],
    )
    assert_fails_unchanged(
        imported_once,
        data_dir,
        ("metadata.csv", 2, "date_begin: not a year"),
        ("connections.csv", 2, "annotated: not an ISO date"),
    )


def test_uid_already_used_for_another_decision(imported_once, data_dir):
    write_rows(
        imported_once.connections, ["uid", "img1", "img2", "type"], [["L1", "art-2", "art-4", "SIMILAR"]]
    )
    run_import(imported_once)
    write_rows(
        imported_once.connections, ["uid", "img1", "img2", "type"], [["L1", "art-2", "art-5", "POSITIVE"]]
    )
    assert_fails_unchanged(imported_once, data_dir, ("connections.csv", 2, "uid 'L1' is already recorded"))


def test_every_problem_is_reported_at_once(source, data_dir):
    (source.images / "img" / "0.jpg").unlink()
    (source.images / "img" / "5.jpg").write_text("junk")
    write_rows(
        source.connections,
        ["img1", "img2", "type"],
        [["art-1", "art-1", "POSITIVE"], ["art-2", "ghost", "POSITIVE"], ["art-3", "art-4", "SORT-OF"]],
    )
    failure = assert_fails_unchanged(
        source,
        data_dir,
        ("metadata.csv", 2, "not found"),
        ("metadata.csv", 7, "not an image"),
        ("connections.csv", 2, "self-link"),
        ("connections.csv", 3, "unknown id"),
        ("connections.csv", 4, "unknown type"),
    )
    assert len(failure.problems) == 5
    assert Artwork.objects.count() == 0
