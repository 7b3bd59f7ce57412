"""Reading the metadata and connection CSV files (plain module, no Django).

Every problem is collected with its file and line rather than raised at the first one, so that a
curator fixes a file in one go. Line numbers are the file's physical lines (header = line 1).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath

from .connection_types import CONNECTION_TYPES, normalise_type

METADATA_REQUIRED = ("id", "path")
METADATA_KNOWN = (
    "title",
    "author",
    "date",
    "date_begin",
    "date_end",
    "style",
    "genre",
    "place",
    "url",
    "iiif_url",
)
CONNECTIONS_REQUIRED = ("img1", "img2", "type")
CONNECTIONS_OPTIONAL = ("uid", "annotated")


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


@dataclass
class MetadataRow:
    line: int
    id: str
    path: str
    fields: dict[str, object]
    extra: dict[str, str]


@dataclass
class ConnectionRow:
    line: int
    img1: str
    img2: str
    type: str
    uid: str
    annotated: datetime | None
    extra: dict[str, str] = field(default_factory=dict)


def read_text(path: Path, problems: list[Problem]) -> str | None:
    """The whole file as text; a byte that is not UTF-8 is reported with its line."""
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(name, None, f"cannot open file: {exc.strerror}"))
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(
            Problem(name, line, f"not valid UTF-8 text (byte {raw[exc.start]:#04x}); save the file as UTF-8")
        )
        return None


def iter_csv(
    path: Path, problems: list[Problem]
) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]] | None:
    """Header and rows as dicts with their line numbers; problems go to `problems`."""
    name = str(path)
    text = read_text(path, problems)
    if text is None:
        return None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        problems.append(Problem(name, 1, f"unreadable header: {exc}"))
        return None
    if not header:
        problems.append(Problem(name, 1, "the file is empty (no header line)"))
        return None
    header = [column.strip() for column in header]
    for column in header:
        if "\x00" in column:
            problems.append(Problem(name, 1, f"column name {column!r} contains a NUL byte"))
            return None
    seen: set[str] = set()
    for column in header:
        if column in seen:
            problems.append(Problem(name, 1, f"column {column!r} appears twice in the header"))
        seen.add(column)

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        start = reader.line_num + 1
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                problems.append(Problem(name, reader.line_num, f"malformed CSV: {exc}"))
                return
            line, start = start, reader.line_num + 1
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(header):
                problems.append(
                    Problem(name, line, f"row has {len(values)} fields but the header has {len(header)}")
                )
                continue
            with_nul = [column for column, value in zip(header, values, strict=True) if "\x00" in value]
            if with_nul:
                # PostgreSQL refuses NUL in text and JSON (a raw DataError naming no line); SQLite would
                # store it silently. Almost always the sign of a binary file saved as CSV.
                problems.append(
                    Problem(name, line, f"NUL byte (\\x00) in column(s) {', '.join(with_nul)}; remove it")
                )
                continue
            yield line, dict(zip(header, values, strict=True))

    return header, rows()


def check_columns(path: Path, header: list[str], required: tuple[str, ...], problems: list[Problem]) -> bool:
    missing = [column for column in required if column not in header]
    if missing:
        problems.append(Problem(str(path), 1, f"missing required column(s): {', '.join(missing)}"))
    return not missing


YEAR = re.compile(r"(?<!\d)(\d{3,4})(?!\d)")
SHORT_RANGE = re.compile(r"(?<!\d)(\d{4})\s*[-–]\s*(\d{2})(?!\d)")
CENTURY = re.compile(r"(\d{1,2})(?:st|nd|rd|th)\s+century", re.IGNORECASE)


def parse_years(text: str) -> tuple[int | None, int | None]:
    """Begin and end years from a free-text date: '1503', 'ca. 1503–1506', '16th century'."""
    years = [int(y) for y in YEAR.findall(text)]
    for full, short in SHORT_RANGE.findall(text):  # "1650-60" means 1650 to 1660
        years.append(int(full[: 4 - len(short)] + short))
    if years:
        return min(years), max(years)
    centuries = [int(c) for c in CENTURY.findall(text)]
    if centuries:
        return (min(centuries) - 1) * 100, max(centuries) * 100 - 1
    return None, None


def parse_year(raw: str) -> int:
    value = raw.strip()
    if not re.fullmatch(r"-?\d{1,4}", value):
        raise ValueError(f"not a year: {raw!r}")
    return int(value)


def parse_timestamp(raw: str) -> datetime:
    value = raw.strip()
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO date or date-time: {raw!r}") from None
        stamp = datetime(day.year, day.month, day.day)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def safe_relative_path(raw: str) -> str | None:
    """The path if it stays inside the images folder, else None."""
    value = raw.strip().replace("\\", "/")
    pure = PurePosixPath(value)
    if not value or pure.is_absolute() or ".." in pure.parts:
        return None
    return str(pure)


def read_metadata(path: Path) -> tuple[list[MetadataRow], list[Problem]]:
    problems: list[Problem] = []
    name = str(path)
    parsed = iter_csv(path, problems)
    if parsed is None:
        return [], problems
    header, rows_iter = parsed
    if not check_columns(path, header, METADATA_REQUIRED, problems):
        return [], problems
    rows: list[MetadataRow] = []
    first_line_of: dict[str, int] = {}
    for line, record in rows_iter:
        external_id = record["id"].strip()
        rel = safe_relative_path(record["path"])
        if not external_id:
            problems.append(Problem(name, line, "empty id"))
        elif external_id in first_line_of:
            problems.append(
                Problem(
                    name, line, f"duplicate id {external_id!r} (first on line {first_line_of[external_id]})"
                )
            )
        else:
            first_line_of[external_id] = line
        if rel is None:
            problems.append(
                Problem(
                    name, line, f"path {record['path']!r} must be relative and stay inside the images folder"
                )
            )
        fields: dict[str, object] = {}
        for column in ("title", "author", "style", "genre", "place", "url", "iiif_url"):
            fields[column] = record.get(column, "").strip()
        for column in ("url", "iiif_url"):
            if fields[column] and not re.match(r"^https?://", str(fields[column])):
                problems.append(Problem(name, line, f"{column} {fields[column]!r} is not an http(s) URL"))
        date_text = record.get("date", "").strip()
        begin, end = parse_years(date_text)
        for column in ("date_begin", "date_end"):
            raw = record.get(column, "").strip()
            if raw:
                try:
                    year = parse_year(raw)
                except ValueError as exc:
                    problems.append(Problem(name, line, f"{column}: {exc}"))
                    continue
                if column == "date_begin":
                    begin = year
                else:
                    end = year
        if begin is not None and end is not None and end < begin:
            problems.append(Problem(name, line, f"date_end {end} is before date_begin {begin}"))
        fields.update(date_text=date_text, date_begin=begin, date_end=end)
        extra = {k: v for k, v in record.items() if k not in METADATA_REQUIRED + METADATA_KNOWN and v != ""}
        rows.append(MetadataRow(line=line, id=external_id, path=rel or "", fields=fields, extra=extra))
    return rows, problems


def read_connections(path: Path) -> tuple[list[ConnectionRow], list[Problem]]:
    problems: list[Problem] = []
    name = str(path)
    parsed = iter_csv(path, problems)
    if parsed is None:
        return [], problems
    header, rows_iter = parsed
    if not check_columns(path, header, CONNECTIONS_REQUIRED, problems):
        return [], problems
    rows: list[ConnectionRow] = []
    uid_lines: dict[str, int] = {}
    for line, record in rows_iter:
        img1, img2 = record["img1"].strip(), record["img2"].strip()
        ok = True
        if not img1 or not img2:
            problems.append(Problem(name, line, "img1 and img2 must both be given"))
            ok = False
        elif img1 == img2:
            problems.append(Problem(name, line, f"self-link: {img1!r} is connected to itself"))
            ok = False
        type_code = normalise_type(record["type"])
        if type_code is None:
            problems.append(
                Problem(
                    name,
                    line,
                    f"unknown type {record['type']!r}; expected one of {', '.join(CONNECTION_TYPES)}",
                )
            )
            ok = False
        uid = record.get("uid", "").strip()
        if uid:
            if len(uid) > 64:
                problems.append(Problem(name, line, "uid longer than 64 characters"))
                ok = False
            elif uid in uid_lines:
                problems.append(
                    Problem(name, line, f"duplicate uid {uid!r} (first on line {uid_lines[uid]})")
                )
                ok = False
            else:
                uid_lines[uid] = line
        annotated = None
        if record.get("annotated", "").strip():
            try:
                annotated = parse_timestamp(record["annotated"])
            except ValueError as exc:
                problems.append(Problem(name, line, f"annotated: {exc}"))
                ok = False
        if ok:
            extra = {
                k: v
                for k, v in record.items()
                if k not in CONNECTIONS_REQUIRED + CONNECTIONS_OPTIONAL and v != ""
            }
            rows.append(ConnectionRow(line, img1, img2, type_code or "", uid, annotated, extra))
    return rows, problems
