"""Job kinds → handler functions.

A handler takes the `Job` row and a progress callback and returns a JSON-able result dict.
Apps register their handlers in their `tasks.py` (autodiscovered by `JobsConfig.ready`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[..., dict[str, Any]]
HANDLERS: dict[str, Handler] = {}


class UnknownJobKind(KeyError):
    pass


def job_handler(kind: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        if kind in HANDLERS and HANDLERS[kind] is not func:
            raise ValueError(f"job kind {kind!r} registered twice")
        HANDLERS[kind] = func
        return func

    return register


def get_handler(kind: str) -> Handler:
    try:
        return HANDLERS[kind]
    except KeyError:
        raise UnknownJobKind(f"no handler for job kind {kind!r}; known: {sorted(HANDLERS)}") from None
