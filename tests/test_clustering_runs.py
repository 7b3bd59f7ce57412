"""Clustering runs against the database: proposals, metrics, decisions kept across runs, commands, maps.

Signatures are made by hand (no model needed) so that the clusters are known: 20 artworks, known components
A = {0, 1, 2} and B = {10, 11}; signature groups G1 = {0, 1, 2, 3} (extends A), G2 = {5, 6, 7} (new group),
G3 = {10, 11, 12} (extends B); the rest are far from everything.
"""

from __future__ import annotations

import csv
import io

import hdbscan
import numpy as np
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from annotations.importer import import_collection
from annotations.models import Artwork
from clustering.algorithms import ClusteringParams
from clustering.assignments import load_assignments
from clustering.layouts import compute_layout
from clustering.maps import compute_layout_for, load_layout
from clustering.models import ClusteringRun, Proposal, ProposalMember
from clustering.runs import run_clustering
from jobs.models import Job, JobState
from jobs.runner import execute
from training import signature_store
from training import signatures as signature_files
from training.models import ModelVersion
from training.signatures import MissingSignatures

from .conftest import SourceCollection

GROUPS = {"G1": [0, 1, 2, 3], "G2": [5, 6, 7], "G3": [10, 11, 12]}


def signatures(seed: int, count: int = 20, jitter: float = 0.004, groups=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, 32))
    for members in (groups or GROUPS).values():
        centre = rng.normal(size=32)
        for member in members:
            vectors[member] = centre + rng.normal(scale=jitter, size=32)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def add_version(number: int, vectors: np.ndarray, active: bool = True) -> ModelVersion:
    ModelVersion.objects.filter(is_active=True).update(is_active=False)
    version = ModelVersion.objects.create(
        number=number,
        backbone="tf_efficientnet_lite0",
        weights_kind="random",
        weights_description="hand-made signatures for tests",
        signature_dim=vectors.shape[1],
        is_active=active,
    )
    ids = list(Artwork.objects.order_by("external_id").values_list("pk", flat=True))
    ordered = sorted(ids, key=lambda pk: int(Artwork.objects.get(pk=pk).external_id.split("-")[1]))
    signature_files.save(version, signature_store.SignatureSet(ordered, vectors))
    return version


@pytest.fixture
def collection(data_dir, tmp_path):
    connections = [
        ["art-0", "art-1", "POSITIVE"],
        ["art-1", "art-2", "POSITIVE"],
        ["art-10", "art-11", "POSITIVE"],
    ]
    source = SourceCollection(tmp_path / "source").write(count=20, connections=connections)
    import_collection(source.images, source.metadata, source.connections, "Test")
    return add_version(0, signatures(1))


def pk(index: int) -> int:
    return Artwork.objects.get(external_id=f"art-{index}").pk


def proposal_with(members: list[int], run: ClusteringRun) -> Proposal | None:
    wanted = {pk(i) for i in members}
    for proposal in run.proposals.all():
        if set(proposal.members.values_list("artwork_id", flat=True)) == wanted:
            return proposal
    return None


@pytest.mark.django_db
def test_run_stores_proposals_classified_against_known_links(collection):
    run = run_clustering(collection, ClusteringParams())
    assert run.cluster_count == 3 and run.artwork_count == 20
    assert run.params == {
        "algorithm": "optics",
        "max_eps": 0.13,
        "min_samples": 2,
        "xi": 0.05,
        "verify_top": 10,
    }
    # Each of the 20 drawn pictures' 10 nearest were verified; no two share a drawing.
    assert run.metrics["verification"]["verified"] == 0 and run.metrics["verification"]["candidates"] >= 100
    kinds = {name: proposal_with(members, run).kind for name, members in GROUPS.items()}
    assert kinds == {"G1": "extends", "G2": "new_group", "G3": "extends"}
    g1 = proposal_with(GROUPS["G1"], run)
    assert g1.new_links == 1 and g1.new_pairs == 3 and g1.components == [3]
    assert [p.rank for p in run.proposals.order_by("rank")] == [1, 2, 3]
    strengths = list(g1.members.values_list("strength", flat=True))
    assert strengths == sorted(strengths, reverse=True) and all(0 < s <= 1 for s in strengths)
    assert run.metrics["all"]["components"] == 2 and run.metrics["all"]["recall"] == 1.0
    assert run.metrics["all"]["precision"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert run.metrics["proposals"] == {"new_group": 1, "extends": 2, "merges": 0, "contains_rejected": 0}
    assert (settings.DATA_DIR / run.assignments_file).is_file()


@pytest.mark.django_db
def test_other_algorithms_and_parameters(collection):
    dbscan = run_clustering(collection, ClusteringParams("dbscan"))
    assert dbscan.cluster_count == 3 and dbscan.params["max_eps"] == 0.08
    hdbscan_run = run_clustering(collection, ClusteringParams("hdbscan"))
    assert hdbscan_run.params == {"algorithm": "hdbscan", "min_cluster_size": 2, "min_samples": 2}
    # The run's stored labels are the hdbscan package's own on these signatures and the defaults.
    ids, labels, _ = load_assignments(hdbscan_run)
    vectors = signatures(1)[[int(Artwork.objects.get(pk=i).external_id.split("-")[1]) for i in ids]]
    reference = hdbscan.HDBSCAN(min_cluster_size=2, min_samples=2, cluster_selection_method="leaf")
    assert np.array_equal(labels, reference.fit_predict(vectors))
    assert hdbscan_run.cluster_count == labels.max() + 1 >= 3
    with pytest.raises(ValueError, match="min_samples"):
        run_clustering(collection, ClusteringParams("optics", min_samples=0))


@pytest.mark.django_db
def test_missing_signatures_are_reported(collection, tmp_path):
    extra = SourceCollection(tmp_path / "more")
    extra.write(count=1, connections=[])
    Artwork.objects.filter(external_id="art-0").update(external_id="moved-0")  # free the id for the import
    import_collection(extra.images, extra.metadata, None, "More")
    with pytest.raises(MissingSignatures, match="1 of 21 artworks have no signature"):
        run_clustering(collection, ClusteringParams())
    run = run_clustering(collection, ClusteringParams(), collections=["Test"])
    assert run.artwork_count == 20 and run.collections == ["Test"]


@pytest.mark.django_db(transaction=True)
def test_a_failed_run_leaves_no_rows_and_no_files(collection, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ProposalMember.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run_clustering(collection, ClusteringParams())
    assert not ClusteringRun.objects.exists() and not Proposal.objects.exists()
    assert not list((settings.DATA_DIR / "clusters").glob("*.npz"))


@pytest.mark.django_db(transaction=True)
def test_cluster_and_export_commands(collection, tmp_path):
    out = io.StringIO()
    call_command("cluster", "--inline", "--model", "active", stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    assert "3 clusters" in text and "precision" in text and "held-out" in text
    assert Job.objects.get(kind="cluster").state == JobState.SUCCEEDED
    target = tmp_path / "clusters.csv"
    call_command("export_clusters", "--run", "latest", "--out", str(target), stdout=io.StringIO())
    rows = list(csv.DictReader(target.open()))
    assert len(rows) == 20 and set(rows[0]) == {"id", "cluster", "strength"}
    by_id = {row["id"]: row for row in rows}
    assert by_id["art-5"]["cluster"] == by_id["art-6"]["cluster"] != "-1"
    assert by_id["art-19"]["cluster"] == "-1" and float(by_id["art-19"]["strength"]) == 0.0

    preview = io.StringIO()
    call_command("cluster", "--preview", "--max-eps", "0.1", stdout=preview)
    assert "3 clusters" in preview.getvalue() and ClusteringRun.objects.count() == 1
    with pytest.raises(CommandError, match="min_samples"):
        call_command("cluster", "--preview", "--min-samples", "1")
    with pytest.raises(CommandError, match="no parameter xi"):
        call_command("cluster", "--preview", "--algorithm", "dbscan", "--xi", "0.1")
    with pytest.raises(CommandError, match="not a run number"):
        call_command("export_clusters", "--run", "nope", "--out", str(target))


@pytest.mark.django_db(transaction=True)
def test_a_round_chains_clustering_and_the_map(collection):
    """`then` in a job's params: the next steps run after it (inline here, on a worker in production)."""
    job = Job.objects.create(
        kind="worker_check",
        params={
            "steps": 1,
            "delay": 0,
            "then": [
                {"kind": "cluster", "params": {"model": "active"}},
                {"kind": "compute_layout", "params": {}},
            ],
        },
    )
    execute(job, follow_ups="inline")
    kinds = list(Job.objects.order_by("pk").values_list("kind", "state"))
    assert kinds == [
        ("worker_check", JobState.SUCCEEDED),
        ("cluster", JobState.SUCCEEDED),
        ("compute_layout", JobState.SUCCEEDED),
    ]
    run = ClusteringRun.objects.get()
    assert run.params["algorithm"] == "optics" and run.model_version == collection
    layout = load_layout(collection)
    assert layout is not None and layout.similarity.shape == (20, 2) and layout.time.shape == (20, 2)
    years = dict(Artwork.objects.values_list("pk", "date_begin"))
    assert [float(y) for y in layout.time[:, 0]] == [float(years[a]) for a in layout.ids]


@pytest.mark.django_db(transaction=True)
def test_the_chain_follows_the_version_it_was_given_and_stops_when_told(collection):
    add_version(1, signatures(2))  # v1 becomes active; the chain below is about v0
    job = Job.objects.create(kind="cluster", params={"model": "0", "then": [{"kind": "compute_layout"}]})
    execute(job, follow_ups="inline")
    layout_job = Job.objects.get(kind="compute_layout")
    assert layout_job.params["model"] == "0" and layout_job.state == JobState.SUCCEEDED
    assert load_layout(collection) is not None and load_layout(ModelVersion.objects.get(number=1)) is None

    broken = Job.objects.create(
        kind="worker_check", params={"steps": 1, "delay": 0, "then": [{"kind": "nope"}]}
    )
    execute(broken, follow_ups="inline")
    broken.refresh_from_db()
    assert broken.state == JobState.SUCCEEDED and "no handler" in broken.result["follow_up_error"]


@pytest.mark.django_db
def test_maps_of_successive_rounds_stay_aligned(collection):
    first = compute_layout_for(collection)
    moved = signatures(1)
    moved += np.random.default_rng(5).normal(scale=0.01, size=moved.shape).astype(np.float32)
    second = compute_layout_for(add_version(1, moved))
    assert second.ids == first.ids
    fresh = compute_layout(second.ids, moved, [None] * len(second.ids), previous=None, seed=1)
    aligned_shift = np.linalg.norm(second.similarity - first.similarity, axis=1).mean()
    fresh_shift = np.linalg.norm(fresh.similarity - first.similarity, axis=1).mean()
    assert aligned_shift < 0.5 * fresh_shift  # started from and aligned to round 1: the map stays put
