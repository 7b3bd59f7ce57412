"""What every benchmark shares: repeated measurements summarised as median and spread, ratios taken run by
run, and a line saying which machine the figures come from.

These machines are noisy (a neighbour's job can halve a run) and differ in what their CPUs compute natively
(bf16, VNNI int8), so a single run of a single variant says little: every benchmark measures each variant
at least `MIN_RUNS` times, alternating the variants so that a slow minute hurts them alike, and reports the
median with the lowest and highest run. A ratio is the median of the per-round ratios (variant and
baseline measured back to back), which cancels drift that the ratio of two medians would keep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MIN_RUNS = 3


@dataclass(frozen=True)
class Samples:
    """Repeated measurements of one quantity (seconds, images/s, MiB...)."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Samples:
        if not values:
            raise ValueError("no measurements")
        return cls(tuple(float(v) for v in values))

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    @property
    def spread_percent(self) -> float:
        """(highest − lowest) / median, in percent: how far apart the runs were."""
        return 100.0 * (self.high - self.low) / self.median if self.median else 0.0

    def show(self, unit: str = "", digits: int = 2) -> str:
        """Median, lowest–highest and run count: 12.30 images/s (11.90–12.80, 3 runs)."""
        unit = f" {unit}" if unit else ""
        if len(self.values) == 1:
            return f"{self.median:.{digits}f}{unit} (1 run)"
        return (
            f"{self.median:.{digits}f}{unit} ({self.low:.{digits}f}–{self.high:.{digits}f}, "
            f"{len(self.values)} runs)"
        )


def paired_ratio(numerator: Samples, denominator: Samples) -> Samples:
    """Per-round ratios of two variants measured in the same rounds (run i of each, back to back)."""
    if len(numerator.values) != len(denominator.values):
        raise ValueError("paired ratios need the same number of runs of both variants")
    return Samples.of([a / b for a, b in zip(numerator.values, denominator.values, strict=True)])


def show_ratio(ratio: Samples) -> str:
    """Median and range of a ratio: ×3.41 (3.20–3.55)."""
    if len(ratio.values) == 1:
        return f"×{ratio.median:.2f}"
    return f"×{ratio.median:.2f} ({ratio.low:.2f}–{ratio.high:.2f})"


def add_runs_argument(parser: argparse.ArgumentParser, default: int = MIN_RUNS) -> None:
    parser.add_argument(
        "--runs",
        type=int,
        default=default,
        help=f"measurements of each variant (default {default}; fewer than {MIN_RUNS}: a smoke test only)",
    )


def check_runs(runs: int) -> None:
    if runs < 1:
        raise SystemExit("--runs must be at least 1")
    if runs < MIN_RUNS:
        print(f"note: {runs} run(s) per variant; the figures need at least {MIN_RUNS} to mean anything")


def _cpu_model_and_flags() -> tuple[str, set[str]]:
    """The first CPU's model name and flags from /proc/cpuinfo (Linux); the platform's name elsewhere."""
    first: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            first.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    model = first.get("model name") or platform.processor() or platform.machine()
    return model, set(first.get("flags", "").split())


def machine_line() -> str:
    """The CPU and what it computes natively, for the first line of every benchmark's output."""
    model, flags = _cpu_model_and_flags()
    native = [
        name
        for name, flag in (
            ("AVX512_BF16", "avx512_bf16"),
            ("AMX_BF16", "amx_bf16"),
            ("AVX512_VNNI", "avx512_vnni"),
            ("AVX_VNNI", "avx_vnni"),
        )
        if flag in flags
    ]
    line = f"machine: {model}, {os.cpu_count()} CPUs, native: {', '.join(native) or 'no bf16/VNNI'}"
    torch = sys.modules.get("torch")  # only when the benchmark uses it anyway: importing it takes seconds
    if torch is None:
        return line
    return f"{line}; torch {torch.__version__}, {torch.get_num_threads()} threads"


def child_result(command: Sequence[str], what: str, **popen: object) -> dict:
    """Run a benchmark's child process (a fresh process per measurement, so that its peak memory is its own)
    and return the JSON object its last line of output holds; a failed child stops the benchmark, naming
    `what` failed and showing the end of its error output (a crash in BLAS or a DataLoader worker says where
    it happened)."""
    done = subprocess.run(list(command), capture_output=True, text=True, **popen)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise SystemExit(f"{what} failed (exit status {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
