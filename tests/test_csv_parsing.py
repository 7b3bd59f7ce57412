from datetime import UTC, datetime

import pytest

from annotations.csvformats import parse_timestamp, parse_years, safe_relative_path


@pytest.mark.parametrize(
    ("text", "years"),
    [
        ("1503", (1503, 1503)),
        ("ca. 1503–1506", (1503, 1506)),
        ("1650-60", (1650, 1660)),
        ("16th century", (1500, 1599)),
        ("first half of the 14th century", (1300, 1399)),
        ("undated", (None, None)),
    ],
)
def test_parse_years(text, years):
    assert parse_years(text) == years


def test_parse_timestamp_accepts_dates_and_zulu():
    assert parse_timestamp("2022-05-01") == datetime(2022, 5, 1, tzinfo=UTC)
    assert parse_timestamp("2022-05-01T10:00:00Z") == datetime(2022, 5, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_timestamp("May 1st")


@pytest.mark.parametrize(
    ("raw", "safe"),
    [("a/b.jpg", "a/b.jpg"), ("a\\b.jpg", "a/b.jpg"), ("/etc/passwd", None), ("../x.jpg", None), ("", None)],
)
def test_safe_relative_path(raw, safe):
    assert safe_relative_path(raw) == safe
