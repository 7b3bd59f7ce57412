"""Collection names given on the command line or in a job's parameters, checked in one place.

A misspelt name used to select no artworks at all, and whatever ran next failed with a misleading message
("no known connections in the train split") or wrote an empty export. Every command that takes
`--collection` and every job handler that reads `collections` from its parameters asks here first.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.management.base import CommandError

from jobs.progress import JobRefused

from .models import Collection

# Enough to spot a typo; an installation with hundreds of collections has the dashboard for the rest.
LISTED_NAMES = 50


class UnknownCollection(JobRefused, ValueError):
    """Names that are not collections; the message lists the collections there are."""


def existing_collections(names: Iterable[str] | None) -> list[str]:
    """`names` in their order, without repeats, when every one is a collection; else `UnknownCollection`.

    An empty or missing list means "every collection" to the callers and is returned as [].
    """
    wanted = list(dict.fromkeys(names or []))
    if not wanted:
        return []
    known = set(Collection.objects.filter(name__in=wanted).values_list("name", flat=True))
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise UnknownCollection(unknown_message(unknown))
    return wanted


def unknown_message(unknown: list[str]) -> str:
    label = "collection" if len(unknown) == 1 else "collections"
    head = f"unknown {label} {', '.join(repr(name) for name in unknown)}"
    names = list(Collection.objects.order_by("name").values_list("name", flat=True)[: LISTED_NAMES + 1])
    if not names:
        return f"{head}; there are no collections yet (import one with import_collection)"
    listed = ", ".join(names[:LISTED_NAMES])
    if len(names) > LISTED_NAMES:
        listed += f", ... ({Collection.objects.count() - LISTED_NAMES} more)"
    return f"{head}; the collections are: {listed}"


def collections_option(names: Iterable[str] | None) -> list[str]:
    """For a command's `--collection` option: the checked names, or a `CommandError` saying which exist."""
    try:
        return existing_collections(names)
    except UnknownCollection as exc:
        raise CommandError(str(exc)) from None
