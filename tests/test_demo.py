"""The demo collection: deterministic, real paintings, ground truth with a hidden part."""

from __future__ import annotations

import csv
import re

import pytest
from django.core.management import call_command

from annotations.demo import DERIVED_COLLECTION, SOURCE_COLLECTION, build_demo
from annotations.models import Artwork, Connection

from .conftest import ROOT, files_under


def rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def edges(path):
    return [tuple(row.values()) for row in rows(path)]


def test_demo_is_deterministic_and_hides_part_of_the_truth(tmp_path):
    first = build_demo(tmp_path / "a", seed=3, limit=30)
    second = build_demo(tmp_path / "b", seed=3, limit=30)
    assert files_under(tmp_path / "a") == files_under(tmp_path / "b")
    other = build_demo(tmp_path / "c", seed=4, limit=30)
    assert files_under(tmp_path / "c") != files_under(tmp_path / "a")

    assert first.counts == second.counts
    assert first.counts["source_paintings"] == 30
    kinds = {d.derivation for d in first.derivatives}
    assert {"workshop_copy", "bw_photograph", "detail", "mirrored"} & kinds
    truth = set(first.edges)
    assert set(first.known) < truth, "only part of the ground truth is known"
    assert all(t in {"POSITIVE", "DUPLICATE"} for _, _, t in truth)
    assert other.counts["ground_truth_connections"] > 0
    # What derives from what must not leak into the imported metadata.
    header = list(rows(tmp_path / "a" / "derivatives.csv")[0])
    assert "derived_from" not in header and "derivation" not in header


@pytest.mark.django_db(transaction=True)
def test_build_demo_imports_both_collections(data_dir, capsys):
    call_command("build_demo", "--limit", "12", "--seed", "5")
    folder = data_dir / "demo"
    sources = Artwork.objects.filter(collection__name=SOURCE_COLLECTION)
    derived = Artwork.objects.filter(collection__name=DERIVED_COLLECTION)
    assert sources.count() == 12
    assert derived.count() == len(rows(folder / "derivatives.csv"))
    known = [row for row in rows(folder / "ground_truth.csv") if row["known"] == "yes"]
    assert Connection.objects.count() == len(known)
    assert all(url.startswith("https://www.metmuseum.org/") for url in sources.values_list("url", flat=True))
    assert "Ground truth" in capsys.readouterr().out


def readme_demo_table() -> tuple[int, dict[str, str]]:
    """The seed and the rows of the README's table of the demo collection."""
    section = (ROOT / "README.md").read_text().split("## The demo collection", 1)[1].split("\n## ", 1)[0]
    seed = int(re.search(r"default seed \((\d+)\)", section).group(1))
    return seed, dict(re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|$", section, flags=re.MULTILINE))


def test_the_readme_table_is_what_the_default_demo_builds(tmp_path):
    """The figures a newcomer reads before starting the workbench: all 174 paintings, the default seed."""
    seed, table = readme_demo_table()
    assert seed == build_demo.__defaults__[0]
    built = build_demo(tmp_path / "demo", seed=seed)
    counts = built.counts
    kinds = {
        "workshop copies": "workshop_copy",
        "details": "detail",
        "mirrored": "mirrored",
        "photographs": "bw_photograph",
        "borrowed motifs": "borrowed_motif",
    }
    derived = ", ".join(f"{counts[f'derivatives_{kind}']} {words}" for words, kind in kinds.items())
    assert table == {
        "Met paintings": str(counts["source_paintings"]),
        "derivatives": f"{counts['derivatives']} ({derived})",
        "ground-truth connections": str(counts["ground_truth_connections"]),
        "imported as known": str(counts["known_connections"]),
        "hidden": str(counts["hidden_connections"]),
    }
    # The counts are those of the files, not only of the report.
    folder = built.folder
    assert len(rows(folder / "sources.csv")) == counts["source_paintings"]
    assert len(rows(folder / "derivatives.csv")) == counts["derivatives"]
    truth = rows(folder / "ground_truth.csv")
    assert len(truth) == counts["ground_truth_connections"]
    assert sum(row["known"] == "yes" for row in truth) == counts["known_connections"]
    assert len(rows(folder / "connections_known.csv")) == counts["known_connections"]
