"""A clustering run as text, for the commands and job summaries."""

from __future__ import annotations

from .models import ClusteringRun


def summary(run: ClusteringRun) -> str:
    heldout = run.heldout_scores()

    def fmt(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    return (
        f"{run.label} ({run.algorithm} on {run.model_version.label}): {run.cluster_count} clusters, "
        f"{run.noise_share:.0%} noise, {run.proposals.count()} proposals; held-out components "
        f"precision {fmt(heldout.get('precision'))}, recall {fmt(heldout.get('recall'))}, "
        f"ARI {fmt(heldout.get('ari'))}" + verified_note(run.metrics.get("verification"))
    )


def verified_note(verification: dict | None) -> str:
    if not verification:
        return ""
    return f"; {verified_pairs(verification)}"


def verified_pairs(verification: dict) -> str:
    return f"{verification['verified']:,} of {verification['candidates']:,} candidate pairs verified"


def metrics_table(run: ClusteringRun) -> str:
    lines = [summary(run), "", f"{'':24}{'held-out (val+test)':>22}{'all components':>18}"]
    heldout, everything = run.metrics.get("heldout", {}), run.metrics.get("all", {})
    for key in ("components", "precision", "recall", "ari", "components_missed", "perfect"):
        values = []
        for scores in (heldout, everything):
            value = scores.get(key)
            values.append(
                "n/a" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))
            )
        lines.append(f"{key:<24}{values[0]:>22}{values[1]:>18}")
    lines.append("")
    lines.append(
        f"clusters {run.cluster_count}, noise {run.noise_share:.1%}, "
        f"largest {run.metrics.get('largest_cluster')}, already known {run.metrics.get('already_known')}"
    )
    lines.append("sizes " + ", ".join(f"{k}: {v}" for k, v in run.metrics.get("size_histogram", {}).items()))
    lines.append("proposals " + ", ".join(f"{k}: {v}" for k, v in run.metrics.get("proposals", {}).items()))
    return "\n".join(lines)
