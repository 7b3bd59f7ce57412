"""Over-long values and NUL bytes are import problems with file, line and column, not a raw DataError
on PostgreSQL or a silent store on SQLite (issue 10.4)."""

from __future__ import annotations

import pytest

from annotations.importer import ImportFailed, import_collection
from annotations.models import Artwork

from .conftest import SourceCollection, database_state, files_under, write_rows

pytestmark = pytest.mark.django_db


def refused(source: SourceCollection, data_dir, collection: str = "Test collection") -> list[str]:
    before_db, before_files = database_state(), files_under(data_dir)
    with pytest.raises(ImportFailed) as failure:
        import_collection(source.images, source.metadata, source.connections, collection)
    assert database_state() == before_db
    assert files_under(data_dir) == before_files
    return [str(problem) for problem in failure.value.problems]


def with_value(source: SourceCollection, row: int, column: str, value: str) -> None:
    rows = source.metadata_rows(6)
    rows[row][SourceCollection.METADATA_HEADER.index(column)] = value
    write_rows(source.metadata, SourceCollection.METADATA_HEADER, rows)


@pytest.mark.parametrize(
    ("column", "limit"), [("id", 255), ("title", 1000), ("author", 500), ("date", 200), ("place", 500)]
)
def test_over_long_value_is_reported_with_its_line(source, data_dir, column, limit):
    assert (
        limit
        == Artwork._meta.get_field({"id": "external_id", "date": "date_text"}.get(column, column)).max_length
    )
    with_value(source, 2, column, "x" * (limit + 1))
    problems = refused(source, data_dir)
    # (a changed id also leaves the connections file naming an unknown "art-2")
    assert (
        f"{source.metadata}:4: {column} is {limit + 1:,} characters long; the limit is {limit:,}" in problems
    )


def test_value_at_the_limit_is_imported(source, data_dir):
    with_value(source, 2, "title", "t" * 1000)
    import_collection(source.images, source.metadata, source.connections, "Test collection")
    assert len(Artwork.objects.get(external_id="art-2").title) == 1000


def test_over_long_collection_name(source, data_dir):
    assert refused(source, data_dir, collection="c" * 201) == [
        f"{source.metadata}: collection name is 201 characters long; the limit is 200"
    ]


@pytest.mark.parametrize("column", ["title", "inventory", "id"])
def test_nul_byte_is_reported_with_its_line_and_column(source, data_dir, column):
    with_value(source, 1, column, "before\x00after")
    problems = refused(source, data_dir)
    assert f"{source.metadata}:3: NUL byte (\\x00) in column(s) {column}; remove it" in problems


def test_nul_byte_in_the_connections_file(source, data_dir):
    write_rows(
        source.connections, ["img1", "img2", "type", "note"], [["art-0", "art-1", "POSITIVE", "a\x00b"]]
    )
    assert refused(source, data_dir) == [
        f"{source.connections}:2: NUL byte (\\x00) in column(s) note; remove it"
    ]
