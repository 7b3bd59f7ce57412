"""Running the simulated historian: a snapshot of the collection, the loop inside it, and the records.

Simulated work never mixes with real work. `start` records a `Simulation`; its job (`review.tasks`) copies
the collection into a snapshot (`simulations/sim-<id>/`: its own SQLite database and data folder, images and
the active model's files linked, not copied) and runs `manage.py simulate_review --sandbox FOLDER` there as
a child process. Inside, every round goes through the workbench's own code: the proposals of the latest
clustering run are answered with `review.decisions.decide` (a historian's click, with source "simulated" and
the `simulated-historian` user, undoable like any decision), then `train_round` and `cluster` run as jobs.
The child reports each round as a JSON line; the parent stores it as a `SimulatedRound` in the workbench's
database and shows its progress. Cancelling the job stops the child; `delete` removes a simulation's
snapshot and records in one step. To look around a snapshot in the web interface:
`WORKBENCH_DATA_DIR=<data folder>/simulations/sim-<id>/data bin/start`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from jobs.progress import JobRefused, ProgressCallback
from workbench import paths

from .models import SimulatedRound, Simulation, SimulationState
from .simulation import ORDERS, POLICIES, Truth, hidden_pairs

SIMULATED_USER = "simulated-historian"
PROMOTION_RULES = ("gate", "always")
EVENT_PREFIX = "@simulation "  # marks the child's report lines among anything else it prints


# --- the workbench side ---------------------------------------------------------------------------------


def check_settings(
    *,
    policy: str,
    error_rate: float,
    order: str,
    rounds: int,
    per_round: int,
    cluster: dict[str, Any],
    train: dict[str, Any],
    promote: str,
) -> None:
    """Every parameter checked before anything is written (a bad one is a ValueError saying which)."""
    from clustering.algorithms import ClusteringParams

    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; one of {', '.join(POLICIES)}")
    if order not in ORDERS:
        raise ValueError(f"unknown review order {order!r}; one of {', '.join(ORDERS)}")
    if promote not in PROMOTION_RULES:
        raise ValueError(f"unknown promotion rule {promote!r}; one of {', '.join(PROMOTION_RULES)}")
    if not 0.0 <= error_rate <= 0.5:
        raise ValueError(f"error rate must be between 0 and 0.5, got {error_rate}")
    if policy != "noisy" and error_rate:
        raise ValueError("an error rate is for the noisy policy only")
    if not 1 <= rounds <= 50:
        raise ValueError(f"rounds must be between 1 and 50, got {rounds}")
    if not 1 <= per_round <= 100_000:
        raise ValueError(f"proposals per round must be between 1 and 100,000, got {per_round}")
    # A misspelt key would silently run with the defaults; "model" is the simulation's own (the active one).
    unknown_cluster = sorted(set(cluster) - {"algorithm", *ClusteringParams.tunable()})
    if unknown_cluster:
        raise ValueError(
            f"unknown clustering parameter(s) {', '.join(unknown_cluster)}; known: algorithm, "
            f"{', '.join(ClusteringParams.tunable())}"
        )
    ClusteringParams.from_values(cluster).resolved()
    options = train_options()
    unknown = sorted(set(train) - set(options))
    if unknown:
        raise ValueError(
            f"unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(options))}"
        )
    for name, value in train.items():
        check_train_value(name, value, options[name])


def train_options() -> dict[str, str]:
    """The `TrainConfig` fields a round may override (what `train_round` takes) with their declared types,
    read from the source so that checking a request does not load torch."""
    import ast

    source = (Path(__file__).resolve().parent.parent / "training" / "trainer.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == "TrainConfig":
            return {
                item.target.id: ast.unparse(item.annotation)
                for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
            }
    raise RuntimeError("training.trainer has no TrainConfig")


def check_train_value(name: str, value: Any, annotation: str) -> None:
    """A value of the option's declared type (checked now, not hours later inside the snapshot)."""
    kinds = {part.strip() for part in annotation.split("|")}
    if value is None and "None" in kinds:
        return
    if isinstance(value, bool):
        fits = "bool" in kinds
    elif isinstance(value, int):
        fits = bool(kinds & {"int", "float"})
    elif isinstance(value, float):
        fits = "float" in kinds and math.isfinite(value)
    else:
        fits = isinstance(value, str) and "str" in kinds
    if not fits:
        raise ValueError(f"training option {name} must be {annotation.replace(' | ', ' or ')}, got {value!r}")


def start(
    truth_file: Path,
    *,
    policy: str = "exact",
    error_rate: float = 0.0,
    order: str = "rank",
    rounds: int = 3,
    per_round: int = 50,
    seed: int = 0,
    cluster: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
    promote: str = "gate",
    user=None,
) -> Simulation:
    """Check everything, then record the simulation (its job is created by the caller)."""
    from training.models import active_version

    cluster, train = dict(cluster or {}), dict(train or {})
    check_settings(
        policy=policy,
        error_rate=error_rate,
        order=order,
        rounds=rounds,
        per_round=per_round,
        cluster=cluster,
        train=train,
        promote=promote,
    )
    truth_file = Path(truth_file).resolve()
    truth = Truth.load(truth_file)  # TruthFileError lists every problem with its line
    version = active_version()
    if version is None:
        raise ValueError("no active model version: compute signatures first (extract_signatures)")
    from annotations.models import Artwork

    known_ids = set(
        Artwork.objects.filter(external_id__in=list(truth.group_of)).values_list("external_id", flat=True)
    )
    reachable, hidden = hidden_pairs(truth, known_ids, known_state()[0])
    if not reachable:
        raise ValueError(
            f"none of the truth file's connections joins two artworks of the collection "
            f"({len(known_ids)} of its {len(truth.group_of)} artworks are imported)"
        )
    if not hidden:
        raise ValueError(
            f"all {len(reachable)} of the truth file's connections between imported artworks are known "
            "already: nothing is left to discover"
        )
    return Simulation.objects.create(
        truth_file=str(truth_file),
        truth_sha256=hashlib.sha256(truth_file.read_bytes()).hexdigest(),
        policy=policy,
        error_rate=error_rate,
        order=order,
        rounds=rounds,
        per_round=per_round,
        seed=seed,
        parameters={"cluster": cluster, "train": train, "promote": promote},
        created_by=user,
    )


def sandbox_folder(simulation: Simulation) -> Path:
    return paths.simulation_folder(simulation.pk)


def link_file(source: Path | str, target: Path | str) -> None:
    """A hard link (a copy where the file system refuses one): a snapshot of a model's files costs no space,
    and the snapshot's rounds never change the originals (the workbench writes files anew, atomically)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def link_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, copy_function=link_file, dirs_exist_ok=True)


def write_snapshot(simulation: Simulation, folder: Path) -> dict[str, Any]:
    """The collection as it stands (artworks, the connection history, the active model and its signatures)
    into `folder`: `snapshot.json` for the snapshot's database, and its data folder with the files."""
    from django.contrib.auth import get_user_model
    from django.core import serializers

    from annotations.models import (
        Artwork,
        Collection,
        Connection,
        ConnectionDecision,
        ImportRecord,
        Retraction,
    )
    from training.models import active_version

    version = active_version()
    if version is None:
        raise JobRefused("no active model version: compute signatures first (extract_signatures)")
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)

    def rows(queryset, *, fields=None, clear=()) -> list[dict]:
        out = serializers.serialize("python", queryset.order_by("pk"), fields=fields)
        for row in out:
            for name in clear:
                row["fields"][name] = None
        return out

    # One read of every table: a decision or import committed between two of them would leave a row
    # pointing at one the snapshot lacks, and its loaddata would fail. SQLite's transaction reads one
    # snapshot from its first read on; PostgreSQL's default (read committed) needs repeatable read.
    # Only a transaction's first statement may set its isolation: inside a caller's transaction (a test's),
    # the snapshot reads in that one.
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        users = rows(
            get_user_model().objects.all(),
            fields=["username", "password", "is_staff", "is_superuser", "is_active", "date_joined"],
        )
        for user in users:
            user["fields"]["password"] = "!"  # unusable: the snapshot folder keeps no password hash
        objects = [
            *users,
            *rows(Collection.objects.all()),
            *rows(ImportRecord.objects.all(), clear=("job",)),
            *rows(Artwork.objects.all()),
            *rows(ConnectionDecision.objects.all()),
            *rows(Retraction.objects.all()),
            *rows(Connection.objects.all()),
            *rows(type(version).objects.filter(pk=version.pk), clear=("job", "parent")),
        ]
    from django.core.serializers.json import DjangoJSONEncoder

    (folder / "snapshot.json").write_text(json.dumps(objects, cls=DjangoJSONEncoder))
    for name in ("images", "thumbs"):
        if (paths.root() / name).is_dir() and not (data / name).exists():
            (data / name).symlink_to(paths.root() / name, target_is_directory=True)
    model_file = paths.absolute(version.checkpoint)
    (data / "models").mkdir(exist_ok=True)
    if model_file.is_file():
        link_file(model_file, data / "models" / model_file.name)
    # Local features are named by image content and replaced atomically, so linking them is safe, and
    # the simulation's verified clustering does not compute them again.
    for source in (
        paths.signatures_folder(version.number),
        paths.synthetic_folder(),
        paths.local_features_folder(),
    ):
        if source.is_dir():
            link_tree(source, data / source.relative_to(paths.root()))
    return {"model_version": version.label, "artworks": Artwork.objects.count()}


def run(simulation: Simulation, progress: ProgressCallback, log: Callable[[str], None]) -> dict[str, Any]:
    """The job: snapshot, the loop in a child process, every round recorded as it ends."""
    folder = sandbox_folder(simulation)
    if folder.exists():
        shutil.rmtree(folder)  # a run that died before: start from a fresh snapshot
    SimulatedRound.objects.filter(simulation=simulation).delete()
    folder.mkdir(parents=True)
    simulation.sandbox = paths.relative(folder)
    simulation.state, simulation.message = SimulationState.RUNNING, "Copying the collection into a snapshot"
    simulation.save(update_fields=["sandbox", "state", "message"])
    progress(0.0, "copying the collection into a snapshot")
    # The truth is the file as it was when the simulation was started: a copy in the snapshot, checked
    # against the recorded hash, so that editing or moving the original cannot change what is measured.
    truth_copy = folder / "truth.csv"
    try:
        shutil.copyfile(simulation.truth_file, truth_copy)
    except OSError as exc:
        raise JobRefused(f"cannot read the truth file {simulation.truth_file}: {exc.strerror}") from None
    if hashlib.sha256(truth_copy.read_bytes()).hexdigest() != simulation.truth_sha256:
        raise JobRefused(
            f"the truth file {simulation.truth_file} changed since the simulation was started; "
            "start a new simulation to measure against it"
        )
    snapshot = write_snapshot(simulation, folder)
    spec = {
        "truth_file": str(truth_copy),
        "policy": simulation.policy,
        "error_rate": simulation.error_rate,
        "order": simulation.order,
        "rounds": simulation.rounds,
        "per_round": simulation.per_round,
        "seed": simulation.seed,
        **simulation.parameters,
    }
    (folder / "spec.json").write_text(json.dumps(spec, indent=2))
    env = {
        key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CELERY_BROKER_URL")
    }
    env["WORKBENCH_DATA_DIR"] = str(folder / "data")  # its own SQLite database lives there
    env["WORKBENCH_BROKER_DIR"] = str(folder / "data" / paths.BROKER_FOLDER)
    log_file = open(folder / "sandbox.log", "w")  # noqa: SIM115 - closed in the finally below
    child = subprocess.Popen(
        [
            sys.executable,
            str(Path(settings.BASE_DIR) / "manage.py"),
            "simulate_review",
            "--sandbox",
            str(folder),
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
        start_new_session=True,  # its own process group: a cancel stops it and whatever it started
    )
    rounds_done = 0
    started = time.monotonic()
    try:
        for line in child.stdout:
            if not line.startswith(EVENT_PREFIX):
                continue
            event = json.loads(line[len(EVENT_PREFIX) :])
            if "progress" in event:
                progress(event["progress"], event["message"])
            elif "start" in event:
                simulation.start = finite({**snapshot, **event["start"]})
                simulation.save(update_fields=["start"])
                log(f"snapshot: {json.dumps(simulation.start)}")
            elif "round" in event:
                record = event["round"]
                rounds_done = record["round"]
                store_round(simulation, record)
                log(round_line(record))
                Simulation.objects.filter(pk=simulation.pk).update(
                    message=f"Round {rounds_done} of {simulation.rounds}: {round_line(record)}"[:500]
                )
        child.wait()
    except BaseException:
        stop_child(child)
        raise
    finally:
        log_file.close()
    if child.returncode != 0:
        tail = (folder / "sandbox.log").read_text(errors="replace").strip().splitlines()[-12:]
        raise RuntimeError(f"the simulation stopped in round {rounds_done + 1}:\n" + "\n".join(tail))
    elapsed = time.monotonic() - started
    records = list(simulation.round_records.order_by("number"))
    last = records[-1] if records else None
    summary = f"{len(records)} simulated rounds in {elapsed / 60:.1f} min: " + (
        f"{(last.discovered_share or 0) * 100:.0f}% of the hidden connections found, "
        f"confirmed share by round {', '.join(fmt(r.share_confirmed) for r in records)}"
        if last
        else "no round"
    )
    return {"summary": summary, "simulation": simulation.pk, "rounds": len(records)}


def stop_child(child: subprocess.Popen) -> None:
    if child.poll() is None:
        try:
            os.killpg(child.pid, signal.SIGTERM)
            child.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait(timeout=20)


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def round_line(record: dict[str, Any]) -> str:
    return (
        f"round {record['round']}: reviewed {record['proposals_reviewed']} of {record['proposals_shown']} "
        f"proposals of {record['reviewed_version']}, confirmed {fmt(record['share_confirmed'])}, "
        f"{record['true_links_gained']} true links gained, {fmt(record['discovered_share'])} of the hidden "
        f"found, {record['wrong_links_accepted']} wrong links accepted"
    )


def finite(value: Any) -> Any:
    """NaN and infinities as None: a metric of an empty split is NaN, and PostgreSQL's jsonb refuses NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def store_round(simulation: Simulation, record: dict[str, Any]) -> SimulatedRound:
    record = finite(record)
    previous = simulation.round_records.order_by("-number").first()
    return SimulatedRound.objects.create(
        simulation=simulation,
        number=record["round"],
        reviewed_version=record["reviewed_version"],
        proposals_shown=record["proposals_shown"],
        proposals_reviewed=record["proposals_reviewed"],
        reviewed_total=(previous.reviewed_total if previous else 0) + record["proposals_reviewed"],
        confirmed=record["confirmed"],
        share_confirmed=record["share_confirmed"],
        true_links_gained=record["true_links_gained"],
        links_per_proposal=record["links_per_proposal"],
        discovered_share=record["discovered_share"],
        wrong_links_accepted=record["wrong_links_accepted"],
        figures=record,
    )


def delete(simulation: Simulation) -> None:
    """Remove a simulation: its snapshot folder and its records (what it measured goes with it)."""
    from jobs.models import ACTIVE_STATES

    if simulation.job_id and simulation.job.state in ACTIVE_STATES:
        raise ValueError(f"{simulation.label} is still running (job #{simulation.job_id}): cancel it first")
    folder = sandbox_folder(simulation)
    with transaction.atomic():
        simulation.delete()
    shutil.rmtree(folder, ignore_errors=True)


# --- inside the snapshot (the child process) ------------------------------------------------------------


def emit(event: dict[str, Any]) -> None:
    sys.stdout.write(EVENT_PREFIX + json.dumps(event) + "\n")
    sys.stdout.flush()


class StepClock:
    """Times of the phases of a round's training job, from its progress messages (no extra hooks), and the
    job's progress passed on to the workbench (once a second: a cancel there stops the child)."""

    def __init__(self, report: Callable[[float, str], None] = lambda fraction, message: None) -> None:
        self.marks: dict[str, float] = {"start": time.monotonic()}
        self.report = report
        self.reported_at = 0.0

    def __call__(self, fraction: float, message: str, eta_seconds: float | None) -> None:
        now = time.monotonic()
        if now - self.reported_at >= 1.0:
            self.report(fraction, message)
            self.reported_at = now
        if message.startswith("computing signatures"):
            self.marks.setdefault("signatures", now)
        elif message.startswith("validating"):
            self.marks.setdefault("validation", now)

    def phases(self, end: float) -> dict[str, float]:
        start = self.marks["start"]
        signatures = self.marks.get("signatures", end)
        validation = self.marks.get("validation", end)
        return {
            "train_s": round(signatures - start, 2),
            "signatures_s": round(max(0.0, validation - signatures), 2),
            "validation_s": round(max(0.0, end - validation), 2),
        }


def exit_with_parent() -> None:
    """Stop when the worker that started this process dies (SIGKILL at shutdown, the OOM killer): the child
    runs in a session of its own, so nothing else would stop it writing into a snapshot that the job's next
    run removes."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(2.0)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def run_job_here(kind: str, params: dict[str, Any], sinks=()) -> dict[str, Any]:
    """A step of the round pipeline as a job row of the snapshot, run in this process."""
    from jobs.models import Job, JobState
    from jobs.runner import execute

    job = Job.objects.create(kind=kind, params=params)
    execute(job, extra_sinks=list(sinks), follow_ups="none")
    job.refresh_from_db()
    if job.state != JobState.SUCCEEDED:
        raise RuntimeError(f"{kind} failed: {job.message}\n{job.error[-2000:]}")
    return job.result or {}


def known_state() -> tuple[dict[str, int], set[str]]:
    """Known components by external id, and the linked artworks (what the snapshot's connections say)."""
    from annotations import knowledge
    from annotations.models import Artwork

    known = knowledge.load()
    external = dict(Artwork.objects.values_list("pk", "external_id"))
    component_of = {external[pk]: component for pk, component in known.component_of.items()}
    return component_of, set(component_of)


def run_in_sandbox(folder: Path) -> None:
    """The loop, in the snapshot's database (the child process of `run`)."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from annotations.models import Artwork, ConnectionDecision, DecisionSource
    from clustering.models import ClusteringRun, ProposalStatus
    from training.models import ModelVersion, active_version

    from .decisions import RejectedPairInside, decide
    from .simulation import RoundFigures, answer, discovered, ordered, wrong_decisions

    spec = json.loads((folder / "spec.json").read_text())
    exit_with_parent()
    emit({"progress": 0.0, "message": "loading the snapshot"})
    call_command("migrate", verbosity=0, interactive=False)
    call_command("loaddata", str(folder / "snapshot.json"), verbosity=0)
    user, _ = get_user_model().objects.get_or_create(username=SIMULATED_USER)
    truth = Truth.load(Path(spec["truth_file"]))
    rng = random.Random(spec["seed"])
    component_of, linked = known_state()
    reachable, hidden = hidden_pairs(
        truth, Artwork.objects.values_list("external_id", flat=True), component_of
    )
    emit(
        {
            "start": {
                "true_pairs": len(truth.pairs),
                "true_pairs_in_collection": len(reachable),
                "known_at_start": len(reachable) - len(hidden),
                "hidden": len(hidden),
                "linked_artworks": len(linked),
            }
        }
    )
    cluster_params = {"model": "active", **spec.get("cluster", {})}
    if spec.get("cluster"):
        cluster_params.setdefault("algorithm", "optics")
    rounds, per_round = spec["rounds"], spec["per_round"]

    def step(r: int, part: float, message: str) -> None:
        emit({"progress": min(1.0, (r - 1 + part) / rounds), "message": f"round {r}/{rounds}: {message}"})

    def clustering(r: int, start: float, span: float) -> StepClock:
        return StepClock(lambda f, m: step(r, start + span * f, f"clustering: {m}"))

    step(1, 0.0, "clustering the active model's signatures")
    cluster_started = time.monotonic()
    run_job_here("cluster", cluster_params, sinks=[clustering(1, 0.0, 0.0)])
    first_cluster_s = time.monotonic() - cluster_started
    found_before = discovered(hidden, component_of)
    reviewed_total = 0
    for r in range(1, rounds + 1):
        run = ClusteringRun.objects.automatic().select_related("model_version").order_by("-pk").first()
        reviewed_version = run.model_version
        queue = [
            {"id": p.pk, "rank": p.rank, "confidence": p.confidence, "size": p.size}
            for p in run.proposals.filter(status=ProposalStatus.OPEN)
        ]
        step(r, 0.0, f"reviewing up to {per_round} of {len(queue)} proposals")
        review_started = time.monotonic()
        first_decision = ConnectionDecision.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        counts = {"confirmed": 0, "confirmed_whole": 0, "rejected": 0, "skipped": 0}
        reviewed = ordered(queue, spec["order"], rng)[:per_round]
        reported_at = time.monotonic()
        for position, item in enumerate(reviewed):
            if time.monotonic() - reported_at >= 1.0:  # each line lets the workbench's side see a cancel
                step(r, 0.3 * position / len(reviewed), f"reviewed {position} of {len(reviewed)} proposals")
                reported_at = time.monotonic()
            members = list(
                run.proposals.get(pk=item["id"])
                .members.order_by("position")
                .values_list("artwork_id", "artwork__external_id")
            )
            reply = answer(spec["policy"], [m[1] for m in members], truth, rng, spec["error_rate"])
            checked = [members[p][0] for p in reply.ticked] if reply.ticked else None
            try:
                proposal, _ = decide(item["id"], reply.action, user, checked, source=DecisionSource.SIMULATED)
            except RejectedPairInside:
                # An earlier round rejected a pair inside (the whole policy, or a slip): a historian would
                # have to untick one side; the simulated one leaves the proposal for later.
                decide(item["id"], "skip", user, source=DecisionSource.SIMULATED)
                counts["skipped"] += 1
                continue
            if proposal.status in (ProposalStatus.CONFIRMED, ProposalStatus.PARTIAL):
                counts["confirmed"] += 1
                counts["confirmed_whole"] += proposal.status == ProposalStatus.CONFIRMED
            elif proposal.status == ProposalStatus.REJECTED:
                counts["rejected"] += 1
        review_s = time.monotonic() - review_started
        new_decisions = ConnectionDecision.objects.filter(
            pk__gt=first_decision, source=DecisionSource.SIMULATED
        )
        wrong_links, wrong_negatives = wrong_decisions(
            new_decisions.values_list("artwork_a__external_id", "artwork_b__external_id", "type"), truth
        )
        component_of, linked_now = known_state()
        found = discovered(hidden, component_of)
        figures = RoundFigures(
            proposals_shown=len(queue),
            proposals_reviewed=len(reviewed),
            true_links_gained=len(found - found_before),
            discovered=len(found),
            hidden_total=len(hidden),
            images_added=len(linked_now - linked),
            wrong_links_accepted=wrong_links,
            wrong_negatives=wrong_negatives,
            **counts,
        )
        found_before, linked = found, linked_now
        reviewed_total += len(reviewed)
        # The next round: train on what was decided, then cluster whatever model is active.
        step(r, 0.3, "training the next round")
        clock = StepClock(lambda f, m, r=r: step(r, 0.3 + 0.6 * f, f"training: {m}"))
        try:
            trained = run_job_here("train_round", dict(spec.get("train", {})), sinks=[clock])
        except RuntimeError as exc:
            if "no known connections in the train split" not in str(exc):
                raise
            trained = {"skipped": True, "summary": str(exc).splitlines()[0]}
        phases = clock.phases(time.monotonic())
        # A skipped round names the version already trained on these connections: nothing new was trained.
        new_version = (
            None
            if trained.get("skipped")
            else ModelVersion.objects.filter(number=trained.get("version")).first()
        )
        if new_version is not None and not new_version.is_active and spec.get("promote") == "always":
            new_version.activate()  # a curator who promotes every round (`promote_model`)
        step(r, 0.9, "clustering")
        cluster_started = time.monotonic()
        run_job_here("cluster", cluster_params, sinks=[clustering(r, 0.9, 0.1)])
        cluster_s = time.monotonic() - cluster_started
        current = active_version()
        emit(
            {
                "round": {
                    "round": r,
                    "reviewed_version": reviewed_version.label,
                    "reviewed_version_metrics": reviewed_version.metrics,
                    **figures.as_dict(),
                    "reviewed_total": reviewed_total,
                    "trained_version": new_version.label if new_version else None,
                    "trained_version_metrics": new_version.metrics if new_version else None,
                    "gate": (new_version.gate or {}).get("decision") if new_version else None,
                    "training_summary": trained.get("summary", ""),
                    "active_after": current.label if current else None,
                    "seconds": {
                        "review_s": round(review_s, 2),
                        **phases,
                        "cluster_s": round(cluster_s + (first_cluster_s if r == 1 else 0.0), 2),
                    },
                }
            }
        )
    emit({"progress": 1.0, "message": "done"})
