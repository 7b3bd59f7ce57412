"""Progress reporting for long jobs (plain module, no Django).

Services are plain functions that take a `progress(fraction, message)` callback (pretix style).
`ProgressTracker` turns those calls into fraction + ETA and fans them out to sinks: the job row
(written from a monitor thread, see `jobs.runner`) and, on the command line, a terminal bar.
A sink signals cancellation by raising `JobCancelled`, which unwinds the service; services keep
their writes inside one transaction so a cancelled job leaves nothing half-done.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO

ProgressCallback = Callable[[float, str], None]


class JobCancelled(Exception):
    """Raised inside a running job when a user asked to cancel it."""


class JobRefused(Exception):
    """A job's input was wrong and its message says how (an unknown collection, say).

    An expected failure: the job fails with the message, and the runner logs it without a traceback.
    """


def no_progress(fraction: float, message: str = "") -> None:
    """The callback for callers that do not watch progress."""


class ProgressSink(Protocol):
    def __call__(self, fraction: float, message: str, eta_seconds: float | None) -> None: ...


class ProgressTracker:
    """Callable progress callback that adds an ETA and forwards to sinks."""

    def __init__(self, sinks: list[ProgressSink], clock: Callable[[], float] = time.monotonic) -> None:
        self.sinks = sinks
        self.clock = clock
        self.started = clock()
        self.fraction = 0.0
        self.message = ""

    def eta_seconds(self, fraction: float) -> float | None:
        """Linear extrapolation from the elapsed time; None until there is something to go on."""
        elapsed = self.clock() - self.started
        if fraction <= 0.0 or elapsed < 0.5:
            return None
        if fraction >= 1.0:
            return 0.0
        return elapsed * (1.0 - fraction) / fraction

    def __call__(self, fraction: float, message: str = "") -> None:
        fraction = max(0.0, min(1.0, float(fraction)))
        self.fraction, self.message = fraction, message
        eta = self.eta_seconds(fraction)
        for sink in self.sinks:
            sink(fraction, message, eta)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class TerminalBar:
    """A one-line progress bar on a TTY; a line every few seconds when output is a file or pipe."""

    def __init__(self, stream: TextIO | None = None, width: int = 30, pipe_interval: float = 2.0) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.is_tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.pipe_interval = pipe_interval
        self.last_line_at = float("-inf")
        self.last_text = ""

    def render(self, fraction: float, message: str, eta_seconds: float | None) -> str:
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        return f"[{bar}] {fraction * 100:5.1f}%  ETA {format_duration(eta_seconds)}  {message}"

    def __call__(self, fraction: float, message: str, eta_seconds: float | None) -> None:
        text = self.render(fraction, message, eta_seconds)
        if self.is_tty:
            self.stream.write("\r\033[K" + text[:200])
            if fraction >= 1.0:
                self.stream.write("\n")
            self.stream.flush()
            return
        now = time.monotonic()
        if text != self.last_text and (now - self.last_line_at >= self.pipe_interval or fraction >= 1.0):
            self.stream.write(text + "\n")
            self.stream.flush()
            self.last_line_at, self.last_text = now, text

    def close(self) -> None:
        if self.is_tty:
            self.stream.write("\n")
            self.stream.flush()
