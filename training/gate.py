"""The promotion gate: does a new round's model beat the active one beyond the noise? (plain module)

Issue 11: the old gate compared two val mAPs measured on 16 images and kept whichever was higher, so it
decided on noise. The gate now compares the two models *on the same queries* and looks at the paired
bootstrap interval of the mAP difference (`metrics.bootstrap_difference`), on each validation it has: the
known connections of the val split and the synthetic derivatives (`synthetic`), each judged on its own and
never pooled.

* **promoted**: at least one validation improves beyond its interval (its lower bound is above 0) and
  none gets worse beyond its interval.
* **rejected**: at least one gets worse beyond its interval and none improves beyond its own.
* **candidate**: inconclusive (no interval excludes 0, or the two validations disagree). The version is
  kept and listed as a candidate; a curator may promote it.

A version with nothing to compare against (the first, or no validation query under either model) is
promoted, and the decision says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .metrics import Interval

Decision = Literal["promoted", "candidate", "rejected"]
VALIDATIONS = {"val": "known val", "synthetic": "synthetic val"}


@dataclass
class GateDecision:
    decision: Decision
    reason: str
    differences: dict[str, dict] = field(
        default_factory=dict
    )  # validation → {delta, low, high, queries, groups}

    @property
    def promoted(self) -> bool:
        return self.decision == "promoted"

    def as_dict(self) -> dict:
        return {"decision": self.decision, "reason": self.reason, "differences": self.differences}


def describe(name: str, interval: Interval) -> str:
    return (
        f"{VALIDATIONS.get(name, name)} mAP {interval.value:+.4f} [{interval.low:+.4f}, {interval.high:+.4f}]"
    )


def decide(
    differences: dict[str, Interval | None], counts: dict[str, tuple[int, int]] | None = None
) -> GateDecision:
    """`differences[name]` is new − active mAP with its interval (None: that validation has no query);
    `counts[name]` = (queries, groups) it was measured on, recorded with the decision."""
    counts = counts or {}
    measured = {name: interval for name, interval in differences.items() if interval is not None}
    recorded = {
        name: {
            "delta": interval.value,
            "low": interval.low,
            "high": interval.high,
            "queries": counts.get(name, (0, 0))[0],
            "groups": counts.get(name, (0, 0))[1],
        }
        for name, interval in measured.items()
    }
    if not measured:
        return GateDecision(
            "promoted", "no validation query to compare on: promoted without evidence", recorded
        )
    better = [name for name, interval in measured.items() if interval.low > 0]
    worse = [name for name, interval in measured.items() if interval.high < 0]
    details = "; ".join(describe(name, interval) for name, interval in measured.items())
    if better and not worse:
        return GateDecision(
            "promoted", f"better beyond the interval on {', '.join(better)}: {details}", recorded
        )
    if worse and not better:
        return GateDecision(
            "rejected", f"worse beyond the interval on {', '.join(worse)}: {details}", recorded
        )
    if better and worse:
        return GateDecision("candidate", f"the validations disagree: {details}", recorded)
    return GateDecision("candidate", f"inconclusive, every interval includes 0: {details}", recorded)
