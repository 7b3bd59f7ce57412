"""Request parameters, parsed in one place: a bad one is a 400 that says what was wrong, never a 500.

`str.isdigit` accepts "²" (which `int()` refuses), `int()` refuses strings of more than 4,300 digits with a
ValueError, a 20-digit number overflows a 64-bit database column, and PostgreSQL cannot store or compare a
NUL byte in text. The functions here refuse all of these with `BadParameter`, which Django answers with 400
through `workbench.views.bad_request` (the message shown, escaped); `NulBytesMiddleware` refuses a NUL byte
in any query or form parameter before a view sees it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.core.exceptions import BadRequest

# ASCII only: `\d` and `str.isdigit` would let other scripts' digits (and superscripts) through.
INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
DATABASE_ID_MAX = 2**63 - 1  # a BigAutoField; the largest value PostgreSQL and SQLite can store
SHOWN_CHARS = 40  # of a bad value in a message: a 5,000-digit number is not worth echoing whole


class BadParameter(BadRequest):
    """A request parameter the page cannot use; the message names it and says what it must be."""


class OutOfRange(BadParameter):
    """A well-formed number outside its range: a form may answer it beside the field instead of with 400."""


def shown(value: object) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int of more than 4,300 digits cannot even be written out
        return "a number too long to show"
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 1]}…"


def integer(value: object, name: str, *, low: int, high: int) -> int:
    """`value` (text from a form or query, or an int from JSON) as an int in [low, high]."""
    message = f"{name} must be a whole number from {low:,} to {high:,}, got {shown(value)}"
    if isinstance(value, str):
        text = value.strip()
        if not INTEGER.fullmatch(text):
            raise BadParameter(message)
        # More digits than the bounds have is out of range: refused before int() parses 5,000 of them.
        if len(text.lstrip("+-0")) > len(str(max(abs(low), abs(high)))):
            raise OutOfRange(message)
        value = int(text)
    if not isinstance(value, int) or isinstance(value, bool):  # JSON true is an int to Python
        raise BadParameter(message)
    if not low <= value <= high:
        raise OutOfRange(message)
    return value


def database_id(value: object, name: str) -> int:
    """The id of a row: what a 64-bit primary key can hold, so a query never overflows."""
    return integer(value, name, low=1, high=DATABASE_ID_MAX)


def text(value: object, name: str, *, max_length: int = 200) -> str:
    """Free text (a search), stripped: no NUL byte and at most `max_length` characters."""
    if not isinstance(value, str):
        raise BadParameter(f"{name} must be text")
    if "\x00" in value:
        raise BadParameter(f"{name} contains a NUL byte")
    value = value.strip()
    if len(value) > max_length:
        raise BadParameter(f"{name} must be at most {max_length:,} characters, got {len(value):,}")
    return value


def choice(value: object, name: str, choices: Iterable[str]) -> str:
    """One of `choices`, exactly; the message lists them."""
    choices = list(choices)
    if value not in choices:
        raise BadParameter(f"{name} must be one of {', '.join(choices)}; got {shown(value)}")
    return value


class NulBytesMiddleware:
    """Refuse a NUL byte in any query or form parameter, name or value, on every page at once.

    PostgreSQL cannot store or compare a NUL in text (a search for one fails with a DataError, a 500), and
    no parameter of this application has a use for one; SQLite would accept it, so the rule holds on both.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        # request.POST parses only form bodies (JSON and others stay unread for the view's request.body).
        for where, parameters in (("query", request.GET), ("form", request.POST)):
            for key, values in parameters.lists():
                if "\x00" in key or any("\x00" in value for value in values):
                    raise BadParameter(f"{where} parameter {shown(key)} contains a NUL byte")
        return self.get_response(request)


def number(value: object, name: str, *, low: float, high: float) -> float:
    """`value` (text from a form or query) as a finite decimal number in [low, high]."""
    message = f"{name} must be a number from {low:g} to {high:g}, got {shown(value)}"
    if not isinstance(value, str) or not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)", value.strip()):
        raise BadParameter(message)  # no "nan", "inf" or 1e999: float() would accept them
    if len(value.strip()) > 32:
        raise BadParameter(message)
    parsed = float(value)
    if not low <= parsed <= high:
        raise OutOfRange(message)
    return parsed
