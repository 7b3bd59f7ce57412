"""Training rounds, round 0, extraction and evaluation against the database (the Django side).

The ML lives in plain modules (`trainer`, `backbones`, `extraction`, `metrics`, `mining`); this
module turns the database into their inputs and their outputs into model versions and files.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta

import numpy as np
import torch
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations import knowledge as knowledge_store
from annotations.models import Artwork
from jobs.models import ACTIVE_STATES, Job
from jobs.progress import ProgressCallback, no_progress
from workbench import paths

from . import gate, signature_store, signatures, synthetic, whitening
from .backbones import build_model
from .label_evaluation import gallery_label_metrics
from .metrics import RetrievalMetrics, bootstrap_difference
from .models import ModelVersion, VersionReservation, active_version
from .trainer import TrainConfig, TrainingData, atomic_torch_save, config_from, evaluate, fit, signatures_for


class NothingToTrain(Exception):
    pass


class RoundInProgress(Exception):
    """Another round holds what this one needs (round 0 being created); the message says which job."""


ROUND_ZERO_KEY = "round-0"
# Below this many unlinked images there is no synthetic validation to speak of (its interval says how
# little a few sources tell; below five it would say nothing).
MIN_SYNTHETIC_SOURCES = 5
# A reservation without a job (a direct call, not a job) that is this old belongs to a process long gone.
ORPHAN_RESERVATION_AGE = timedelta(days=2)


def release_stale_reservations() -> None:
    """Reservations of rounds whose job ended without releasing them (a killed worker, once reaped)."""
    Job.objects.reap_dead()
    stale = VersionReservation.objects.exclude(job__state__in=ACTIVE_STATES).exclude(job=None)
    stale.delete()
    VersionReservation.objects.filter(
        job=None, created_at__lt=timezone.now() - ORPHAN_RESERVATION_AGE
    ).delete()


def next_version_number() -> int:
    taken = [
        ModelVersion.objects.order_by("-number").values_list("number", flat=True).first(),
        VersionReservation.objects.order_by("-number").values_list("number", flat=True).first(),
    ]
    return max((n for n in taken if n is not None), default=0) + 1


def reserve_version(
    fingerprint: str, backbone: str, job=None, number: int | None = None
) -> tuple[VersionReservation | None, VersionReservation | None]:
    """(reservation, None) with the next free number (or `number`), or (None, holder) when another round
    is already training on the same connection set and backbone."""
    release_stale_reservations()
    for _ in range(50):
        wanted = next_version_number() if number is None else number
        try:
            with transaction.atomic():
                if ModelVersion.objects.filter(number=wanted).exists():
                    raise IntegrityError(f"v{wanted} exists")
                return VersionReservation.objects.create(
                    number=wanted, connection_set_hash=fingerprint, backbone=backbone, job=job
                ), None
        except IntegrityError:
            holder = VersionReservation.objects.filter(
                connection_set_hash=fingerprint, backbone=backbone
            ).first()
            if holder is not None or number is not None:
                return None, holder
            # Another round took this number between our read and our insert: take the next one.
    raise RuntimeError("could not reserve a model version number after 50 attempts")


@contextmanager
def reserved(reservation: VersionReservation) -> Iterator[VersionReservation]:
    """Release the reservation however the round ends (its version row replaces it on success)."""
    try:
        yield reservation
    finally:
        VersionReservation.objects.filter(pk=reservation.pk).delete()


@dataclass
class Gallery:
    artworks: list[Artwork]
    data: TrainingData


def selected_artworks(collections: Sequence[str] | None) -> list[Artwork]:
    artworks = Artwork.objects.order_by("pk")
    if collections:
        artworks = artworks.filter(collection__name__in=collections)
    return list(artworks.only("pk", "image_sha256", "image_ext", "split", "external_id"))


def build_gallery(collections: Sequence[str] | None = None) -> Gallery:
    """The artworks (of `collections`) as rows, with what historians know about them (`annotations.knowledge`,
    restricted to pairs inside the selection) turned into the trainer's row-indexed arrays."""
    artworks = selected_artworks(collections)
    row = {artwork.pk: index for index, artwork in enumerate(artworks)}
    known = knowledge_store.load(row.keys())
    links = [(row[a], row[b]) for a, b in known.links]
    component_of = np.full(len(artworks), -1, dtype=np.int64)
    for artwork_id, component in known.component_of.items():
        component_of[row[artwork_id]] = component
    split = np.array([artwork.split for artwork in artworks])
    excluded: dict[int, set[int]] = {}
    for a, b in sorted(known.similar):
        excluded.setdefault(row[a], set()).add(row[b])
        excluded.setdefault(row[b], set()).add(row[a])
    negatives: dict[int, list[int]] = {}
    for a, b in sorted((row[a], row[b]) for a, b in known.rejected):
        negatives.setdefault(a, []).append(b)
        negatives.setdefault(b, []).append(a)
    has_partner = component_of >= 0
    pool = np.flatnonzero((split == "train") | (split == ""))
    # Self-supervised positives may come from the whole pool except the synthetic validation's sources,
    # which must stay unseen for that validation to mean anything. (They may still be mined as negatives:
    # being pushed away from an unrelated anchor teaches nothing about finding one's own derivatives.)
    # The validation is chosen on the whole collection (`synthetic_validation(build_gallery())`).
    if collections:
        everything = build_gallery()
        held_out_ids = {
            everything.artworks[r].pk
            for r in synthetic_sources(everything.artworks, everything.data.component_of)
        }
        held_out = {r for r, artwork in enumerate(artworks) if artwork.pk in held_out_ids}
    else:
        held_out = set(synthetic_sources(artworks, component_of))
    data = TrainingData(
        paths=[str(paths.absolute(artwork.image_relpath)) for artwork in artworks],
        component_of=component_of,
        train_pairs=[(a, b) for a, b in links if split[a] == "train" and split[b] == "train"],
        pool=pool,
        unlabelled=np.array([row for row in pool.tolist() if row not in held_out], dtype=np.int64),
        excluded_partners=excluded,
        historian_negatives=negatives,
        val_queries=np.flatnonzero((split == "val") & has_partner),
        test_queries=np.flatnonzero((split == "test") & has_partner),
    )
    return Gallery(artworks, data)


def connection_set_hash(gallery: Gallery) -> str:
    """What a round learns from: the train pairs and the historians' negatives and similars."""
    ids = [artwork.pk for artwork in gallery.artworks]
    digest = hashlib.sha256()
    for a, b in sorted(gallery.data.train_pairs):
        digest.update(f"P{ids[a]}-{ids[b]};".encode())
    for a, partners in sorted(gallery.data.historian_negatives.items()):
        digest.update(f"N{ids[a]}:{sorted(ids[p] for p in partners)};".encode())
    for a, partners in sorted(gallery.data.excluded_partners.items()):
        digest.update(f"S{ids[a]}:{sorted(ids[p] for p in partners)};".encode())
    return digest.hexdigest()


def load_version_model(version: ModelVersion) -> torch.nn.Module:
    model, _ = build_model(version.backbone, "none", None, version.config.get("pooling", "avg"))
    state = torch.load(paths.absolute(version.checkpoint), map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    if state.get("whitening"):
        model.whitening = whitening.Whitening.from_state(state["whitening"])
    return model.eval()


def learn_whitening(model: torch.nn.Module, config: TrainConfig, raw: np.ndarray) -> np.ndarray:
    """Fit the whitening on the collection's raw signatures, attach it to `model` (so that every later
    signature of this version, a search query included, is whitened the same way) and return the whitened
    signatures; the raw ones when it is off or the collection too small."""
    if config.whitening_shrinkage is None:
        return raw
    learned = whitening.fit(raw, config.whitening_shrinkage)
    if learned is None:
        return raw
    model.whitening = learned
    return learned.apply(raw)


def save_version_model(model: torch.nn.Module, config: TrainConfig, number: int) -> None:
    state = {"model": model.state_dict(), "config": asdict(config)}
    if getattr(model, "whitening", None) is not None:
        state["whitening"] = model.whitening.state()
    atomic_torch_save(state, paths.model_file(number))


def embed_files(
    model: torch.nn.Module, version: ModelVersion, files: Sequence[str], progress=None, **overrides
) -> np.ndarray:
    """Signatures of image files under `version` (its input size and pooling; `overrides` for the batch
    size and loader workers, e.g. one image and no worker process in the web server)."""
    return signatures_for(model, list(files), config_for(version, **overrides), progress=progress)


def config_for(version: ModelVersion | None, **overrides) -> TrainConfig:
    return config_from(TrainConfig, dict(version.config) if version else {}, **overrides)


def json_safe(metrics: dict) -> dict:
    """NaN (no query with a partner) is not valid JSON: store it as null."""
    return {
        key: (None if isinstance(value, float) and value != value else value)
        for key, value in metrics.items()
    }


def synthetic_sources(artworks: Sequence[Artwork], component_of: np.ndarray) -> list[int]:
    """Rows of the synthetic validation's sources: chosen among the artworks with no known connection and
    no split (`training.synthetic.choose_sources`); none when there are too few of them."""
    candidates = [
        (row, artwork.image_sha256)
        for row, artwork in enumerate(artworks)
        if component_of[row] < 0 and not artwork.split
    ]
    if len(candidates) < MIN_SYNTHETIC_SOURCES:
        return []
    return synthetic.choose_sources(candidates)


def synthetic_validation(
    gallery: Gallery, progress: ProgressCallback = no_progress
) -> synthetic.SyntheticSet | None:
    """Derivatives of the gallery's synthetic sources (`synthetic_sources`), or None when it has too few
    candidates. Rows refer to `gallery`."""
    sources = synthetic_sources(gallery.artworks, gallery.data.component_of)
    if not sources:
        return None
    chosen = set(sources)
    return synthetic.build(
        paths.synthetic_folder(),
        gallery.data.paths,
        [artwork.image_sha256 for artwork in gallery.artworks],
        sources,
        [row for row in range(len(gallery.artworks)) if row not in chosen],
        progress=progress,
    )


def synthetic_vectors(
    version: ModelVersion, synthetic_set: synthetic.SyntheticSet, model: torch.nn.Module | None = None
) -> np.ndarray:
    """Signatures of the synthetic images under `version`.

    With `model` (a version being created), all of them are computed with it and replace whatever the
    folder holds: a round that died after writing them may have left vectors of another model under the
    same number. Without, the stored ones are used and the missing ones computed with the version's own
    model, loaded from its checkpoint, and stored beside them."""
    folder = paths.synthetic_signatures_folder(version.number)
    stored = None if model is not None else signature_store.load(folder)
    have = stored.row_of() if stored else {}
    missing = [name for name in synthetic_set.names if name not in have]
    if missing:
        method = version.retrieval_method
        model = model if model is not None else method.load_model(version)
        vectors = method.embed(model, version, [str(synthetic_set.folder / name) for name in missing])
        stored = signature_store.merge(stored, missing, vectors)
        signature_store.save(folder, stored)
        have = stored.row_of()
    return np.asarray(stored.vectors[[have[name] for name in synthetic_set.names]])


def version_vectors(version: ModelVersion, gallery: Gallery) -> np.ndarray:
    """`version`'s signatures of the gallery's artworks, in row order (missing ones extracted first)."""
    extract_for_version(version)
    stored = signatures.require(version)
    rows = stored.row_of()
    return np.asarray(stored.vectors[[rows[artwork.pk] for artwork in gallery.artworks]])


@dataclass
class Validation:
    """A version measured on the gallery: val and test (known connections) and the synthetic validation."""

    results: dict[str, RetrievalMetrics]
    synthetic_set: synthetic.SyntheticSet | None

    def metrics(self) -> dict[str, dict]:
        return {name: json_safe(result.as_dict()) for name, result in self.results.items()}


def validate(
    version: ModelVersion,
    model: torch.nn.Module | None,
    vectors: np.ndarray,
    gallery: Gallery,
    synthetic_set: synthetic.SyntheticSet | None = None,
) -> Validation:
    results = {split: evaluate(vectors, gallery.data, split) for split in ("val", "test")}
    if synthetic_set is not None and synthetic_set.queries:
        query_vectors = synthetic_vectors(version, synthetic_set, model)
        results["synthetic"] = synthetic.evaluate(vectors, query_vectors, synthetic_set)
    return Validation(results, synthetic_set)


def paired_difference(new: RetrievalMetrics, old: RetrievalMetrics):
    """new − old mAP over the queries both evaluated (the same ones, on the same gallery and truth)."""
    if new.n_queries == 0 or not np.array_equal(new.query_rows, old.query_rows):
        return None
    return bootstrap_difference(new.average_precisions, old.average_precisions, new.query_groups)


def gate_against(
    version: ModelVersion, parent: ModelVersion, gallery: Gallery, validation: Validation
) -> gate.GateDecision:
    """The gate's decision for `version` against the active `parent`, both measured on the same queries."""
    parent_vectors = version_vectors(parent, gallery)
    differences, counts = {}, {}
    theirs = {"val": evaluate(parent_vectors, gallery.data, "val", bootstrap=0)}
    if "synthetic" in validation.results:
        query_vectors = synthetic_vectors(parent, validation.synthetic_set)
        theirs["synthetic"] = synthetic.evaluate(
            parent_vectors, query_vectors, validation.synthetic_set, bootstrap=0
        )
    for name, old in theirs.items():
        new = validation.results[name]
        differences[name] = paired_difference(new, old)
        counts[name] = (new.n_queries, new.n_groups)
    return gate.decide(differences, counts)


def store_signatures(
    version: ModelVersion, gallery: Gallery, vectors: np.ndarray, raw: np.ndarray | None = None
) -> None:
    """The signatures, and the raw ones beside them when they were whitened (`signatures.load`)."""
    ids = [artwork.pk for artwork in gallery.artworks]
    raw_set = None if raw is None or raw is vectors else signature_store.SignatureSet(ids, raw)
    signatures.save(version, signature_store.SignatureSet(ids, vectors), raw_set)


def create_round_zero(
    config: TrainConfig, user=None, job=None, progress: ProgressCallback = no_progress, log=lambda line: None
) -> ModelVersion:
    """The untrained model (pretrained weights only), evaluated like every later version. Number 0 is
    reserved like any round's: two workers starting the first round at once do not both create it."""
    reservation, holder = reserve_version(ROUND_ZERO_KEY, config.backbone, job, number=0)
    if reservation is None:
        created_meanwhile = ModelVersion.objects.filter(number=0).first()
        if created_meanwhile is not None:
            return created_meanwhile
        raise RoundInProgress(
            f"round 0 is being created by job #{holder.job_id if holder else '?'}; "
            "start again when it has finished"
        )
    with reserved(reservation):
        return create_reserved_round_zero(config, user, job, progress, log)


def create_reserved_round_zero(
    config: TrainConfig, user, job, progress: ProgressCallback, log
) -> ModelVersion:
    gallery = build_gallery()
    model, origin = build_model(config.backbone, config.weights, config.weights_file, config.pooling)
    log(f"round 0: {config.backbone}, weights: {origin.description}")
    progress(0.05, "round 0: computing signatures")
    raw = signatures_for(model, gallery.data.paths, config, progress=lambda f, m: progress(0.05 + 0.9 * f, m))
    vectors = learn_whitening(model, config, raw)
    save_version_model(model, config, 0)
    synthetic_set = synthetic_validation(gallery)
    version = ModelVersion(
        number=0,
        backbone=config.backbone,
        weights_kind=origin.kind,
        weights_description=origin.description,
        weights_sha256=origin.sha256 or "",
        config=asdict(config),
        connection_set_hash="",
        checkpoint=paths.relative(paths.model_file(0)),
        signature_dim=vectors.shape[1],
        created_by=user,
        job=job,
        gate={"decision": "promoted", "reason": "round 0: the pretrained backbone, nothing to compare with"},
    )
    progress(0.97, "round 0: validating")
    version.metrics = validate(version, model, vectors, gallery, synthetic_set).metrics()
    version.metrics["labels"] = gallery_label_metrics(vectors, gallery.artworks)
    with transaction.atomic():
        version.save()
        version.activate()
    store_signatures(version, gallery, vectors, raw)
    return version


def train_round(
    collections: Sequence[str] | None = None,
    *,
    backbone: str | None = None,
    epochs: int | None = None,
    force: bool = False,
    user=None,
    job=None,
    progress: ProgressCallback = no_progress,
    log: Callable[[str], None] = lambda line: None,
    **overrides,
) -> dict:
    weights_file = overrides.pop("weights_file", None)  # only round 0 starts from a user's file
    parent = active_version()
    if parent is None:
        config0 = config_for(None, backbone=backbone, weights_file=weights_file, **overrides)
        parent = create_round_zero(
            config0, user=user, job=job, progress=lambda f, m: progress(0.1 * f, m), log=log
        )
    config = config_for(parent, backbone=backbone, epochs=epochs, **overrides)
    gallery = build_gallery(collections)
    fingerprint = connection_set_hash(gallery)
    if not gallery.data.train_pairs:
        raise NothingToTrain("no known connections in the train split: annotate or import some first")
    same = ModelVersion.objects.filter(connection_set_hash=fingerprint, backbone=config.backbone)
    if same.exists() and not force:
        return trained_already(same)
    # The number is reserved before any file is written: a second worker starting a round now gets
    # the next number, or skips when it would train on the same connections (issue 10.2).
    reservation, holder = reserve_version(fingerprint, config.backbone, job)
    if reservation is None:
        return {
            "summary": f"Skipped: job #{holder.job_id} is already training on the same connections "
            f"(as v{holder.number})",
            "skipped": True,
        }
    with reserved(reservation):
        if same.exists() and not force:
            # A round on the same connections finished between the check above and the reservation.
            return trained_already(same)
        return train_reserved_round(
            reservation, parent, config, gallery, fingerprint, user, job, progress, log
        )


def trained_already(same, why: str = "was trained on the same connections") -> dict:
    """The result of a job that would make a version the newest of `same` already is (unless forced)."""
    version = same.order_by("-number").first()
    return {
        "summary": f"Skipped: {version.label} {why} (use --force)",
        "skipped": True,
        "version": version.number,
    }


def train_reserved_round(
    reservation: VersionReservation,
    parent: ModelVersion,
    config: TrainConfig,
    gallery: Gallery,
    fingerprint: str,
    user,
    job,
    progress: ProgressCallback,
    log: Callable[[str], None],
) -> dict:
    if config.backbone == parent.backbone:
        # Continue from the parent's weights (round 0: the pretrained backbone as evaluated).
        config.weights, config.weights_file = "auto", str(paths.absolute(parent.checkpoint))
        origin_kind, origin_text = (
            parent.weights_kind,
            f"fine-tuned from {parent.label} ({parent.weights_description})",
        )
    else:
        config.weights, config.weights_file = "auto", None
        origin_kind, origin_text = "", ""
    number = reservation.number
    checkpoint_dir = paths.training_checkpoints(f"{fingerprint[:16]}-{config.key()}")
    result = fit(
        config, gallery.data, checkpoint_dir, progress=lambda f, m: progress(0.1 + 0.8 * f, m), log=log
    )
    progress(0.9, "computing signatures of every artwork")
    full = build_gallery()
    raw = signatures_for(
        result.model, full.data.paths, config, progress=lambda f, m: progress(0.9 + 0.06 * f, m)
    )
    vectors = learn_whitening(result.model, config, raw)
    save_version_model(result.model, config, number)
    version = ModelVersion(
        number=number,
        backbone=config.backbone,
        weights_kind=origin_kind or result.origin.kind,
        weights_description=origin_text or f"fine-tuned from {result.origin.description}",
        weights_sha256=result.origin.sha256 or "",
        config={**asdict(config), "history": result.history},
        parent=parent,
        connection_set_hash=fingerprint,
        checkpoint=paths.relative(paths.model_file(number)),
        signature_dim=vectors.shape[1],
        created_by=user,
        job=job,
    )
    progress(0.96, "validating against the active version")
    validation = validate(version, result.model, vectors, full, synthetic_validation(full))
    version.metrics = {**validation.metrics(), "labels": gallery_label_metrics(vectors, full.artworks)}
    decision = gate_against(version, parent, full, validation)
    version.gate = decision.as_dict()
    activated = decision.promoted
    with transaction.atomic():
        version.save()
        if activated:
            version.activate()
        # In the same transaction: a round waiting to reserve the same connections sees the version.
        VersionReservation.objects.filter(pk=reservation.pk).delete()
    store_signatures(version, full, vectors, raw)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    outcome = {
        "promoted": "now active",
        "candidate": f"kept as a candidate, {parent.label} stays active (promote {version.label} to use it)",
        "rejected": f"rejected, {parent.label} stays active",
    }[decision.decision]
    summary = f"{version.label} against {parent.label}: {decision.reason}; {outcome}"
    log(summary)
    return {
        "summary": summary,
        "version": version.number,
        "activated": activated,
        "gate": decision.decision,
        "stop_chain": not activated,
        "metrics": version.metrics,
        "resumed_from_epoch": result.resumed_from_epoch,
    }


def extract_for_version(
    version: ModelVersion | None,
    collections: Sequence[str] | None = None,
    *,
    user=None,
    job=None,
    progress: ProgressCallback = no_progress,
    log=lambda line: None,
) -> dict:
    """Signatures of the artworks that do not have one yet under `version` (incremental)."""
    if version is None:
        version = create_round_zero(config_for(None), user=user, job=job, progress=progress, log=log)
        return {
            "summary": f"Created round 0 ({version.backbone}) with signatures of every artwork",
            "version": version.number,
        }
    stored = signatures.load(version)
    have = set(stored.ids) if stored else set()
    missing = [artwork for artwork in selected_artworks(collections) if artwork.pk not in have]
    if not missing:
        return {
            "summary": f"All signatures of {version.label} are up to date",
            "version": version.number,
            "new": 0,
            "skipped": True,
        }
    method = version.retrieval_method
    model = method.load_model(version)
    files = [str(paths.absolute(a.image_relpath)) for a in missing]
    new_ids = [a.pk for a in missing]
    learned = getattr(model, "whitening", None)
    if learned is None:
        vectors = method.embed(model, version, files, progress=progress)
        signatures.save(version, signature_store.merge(stored, new_ids, vectors))
    else:
        # Whitened with the version's own whitening, and kept raw for clustering (`signatures.load`).
        model.whitening = None
        raw = method.embed(model, version, files, progress=progress)
        model.whitening = learned
        stored_raw = signature_store.load(paths.raw_signatures_folder(version.number))
        whitened = signature_store.merge(stored, new_ids, learned.apply(raw))
        raw_set = signature_store.merge(stored_raw, new_ids, raw)
        signatures.save(version, whitened, raw_set if raw_set.ids == whitened.ids else None)
    return {
        "summary": f"{len(missing)} new signatures under {version.label}",
        "version": version.number,
        "new": len(missing),
    }
