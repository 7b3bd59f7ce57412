"""The simulated historian end to end (`review.simulate`): two short rounds on a real worker in a snapshot of
a generated collection, their records checked against the truth file and the snapshot's own database; the
workbench's data untouched; simulated decisions undoable and left out of exports; bad input refused."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from annotations.connections import Statement, apply_statements
from annotations.demo import build_demo
from annotations.exporting import write_connections_csv
from annotations.importer import import_collection
from annotations.models import Connection, DecisionSource
from annotations.splits import connected_components
from clustering.algorithms import ClusteringParams
from clustering.runs import run_clustering
from jobs.models import Job, JobState
from jobs.runner import enqueue
from review import simulate
from review.decisions import decide, undo_last
from review.models import Simulation, SimulationState
from training.models import active_version
from training.rounds import extract_for_version
from workbench import paths

from .conftest import database_state, wait_until
from .test_clustering_runs import GROUPS, collection, pk, proposal_with, signatures  # noqa: F401

# Each round trains EfficientNet-Lite0 for one epoch at 64 px (as in test_training_rounds).
TRAIN = {"epochs": 1, "input_size": 64, "negatives_per_pair": 2, "batch_size": 8, "num_workers": 0}
# Round 0's raw signatures of this small demo group its copies at a looser radius than the thesis's 0.13.
CLUSTER = {"max_eps": 0.3}


@pytest.fixture
def demo(data_dir, tmp_path):
    """16 Met paintings and their derivatives; half the ground truth imported as known, round 0 computed."""
    build = build_demo(tmp_path / "demo", seed=5, limit=16)
    images = build.folder / "images"
    import_collection(images, build.folder / "sources.csv", None, "Met")
    import_collection(
        images, build.folder / "derivatives.csv", build.folder / "connections_known.csv", "Derived"
    )
    extract_for_version(None)
    return build


def linking_pairs(path: Path) -> set[tuple[str, str]]:
    with path.open(newline="") as handle:
        return {
            tuple(sorted((row["img1"], row["img2"])))
            for row in csv.DictReader(handle)
            if row["type"] in ("POSITIVE", "DUPLICATE")
        }


def component_map(pairs) -> dict[str, int]:
    return {member: n for n, group in enumerate(connected_components(sorted(pairs))) for member in group}


def joined(pairs, components) -> set:
    return {(a, b) for a, b in pairs if a in components and components.get(a) == components.get(b)}


@pytest.mark.django_db(transaction=True)
def test_two_simulated_rounds_on_a_worker_match_the_truth(demo, celery_worker_process, client):
    truth_file = demo.folder / "ground_truth.csv"
    before = database_state()
    version_before = active_version()
    simulation = simulate.start(
        truth_file, rounds=2, per_round=8, train=TRAIN, cluster=CLUSTER, promote="always", seed=3
    )
    job = enqueue("simulate_review", {"simulation": simulation.pk})

    def finished() -> bool:
        job.refresh_from_db()
        return not job.is_active

    wait_until(finished, timeout=900, interval=1, message="the simulation job")
    assert job.state == JobState.SUCCEEDED, (
        job.message,
        job.error,
        celery_worker_process.log_path.read_text()[-3000:],
    )
    simulation.refresh_from_db()
    assert simulation.state == SimulationState.FINISHED and simulation.job_id == job.pk
    records = list(simulation.round_records.order_by("number"))
    assert [r.number for r in records] == [1, 2]

    # Never mixed with real work: the workbench's own data is exactly as it was.
    assert database_state() == before
    assert active_version() == version_before

    # The truth file and the known file, read here without the workbench's code.
    truth = linking_pairs(truth_file)
    truth_groups = component_map(truth)
    known_start = linking_pairs(demo.folder / "connections_known.csv")
    hidden = truth - joined(truth, component_map(known_start))
    assert simulation.start["hidden"] == len(hidden) > 0

    # The snapshot's own database says what the simulated historian did.
    snapshot = sqlite3.connect(paths.absolute(simulation.sandbox) / "data" / paths.DATABASE_FILE)
    external = dict(snapshot.execute("SELECT id, external_id FROM annotations_artwork"))
    links_now = {
        tuple(sorted((external[a], external[b])))
        for a, b in snapshot.execute(
            "SELECT artwork_a_id, artwork_b_id FROM annotations_connection "
            "WHERE type IN ('POSITIVE', 'DUPLICATE')"
        )
    }
    found = joined(hidden, component_map(links_now))
    last = records[-1]
    assert last.figures["discovered"] == len(found) and last.figures["hidden_total"] == len(hidden)
    assert last.discovered_share == pytest.approx(len(found) / len(hidden))
    assert sum(r.true_links_gained for r in records) == len(found)
    assert records[0].discovered_share <= last.discovered_share

    decisions = list(
        snapshot.execute(
            "SELECT d.artwork_a_id, d.artwork_b_id, d.type, d.source, u.username "
            "FROM annotations_connectiondecision d LEFT JOIN auth_user u ON u.id = d.user_id "
            "WHERE d.source != 'import'"
        )
    )
    assert decisions, "the simulated historian decided nothing"
    assert {(source, user) for *_, source, user in decisions} == {("simulated", simulate.SIMULATED_USER)}
    wrong = [
        (external[a], external[b])
        for a, b, type_code, *_ in decisions
        if type_code in ("POSITIVE", "DUPLICATE")
        and truth_groups.get(external[a], -1) != truth_groups.get(external[b], -2)
    ]
    assert wrong == [] and sum(r.wrong_links_accepted for r in records) == 0  # the exact policy
    statuses = [status for (status,) in snapshot.execute("SELECT status FROM clustering_proposal")]
    assert sum(r.proposals_reviewed for r in records) == sum(s != "open" for s in statuses)
    assert sum(r.confirmed for r in records) == sum(s in ("confirmed", "partial") for s in statuses)
    for record in records:
        assert record.proposals_reviewed == min(8, record.proposals_shown)
        assert record.share_confirmed == pytest.approx(record.confirmed / record.proposals_reviewed)
        assert record.figures["seconds"]["train_s"] > 0 and record.figures["seconds"]["cluster_s"] > 0
        assert "ci" in record.figures["reviewed_version_metrics"]["val"]
    assert records[0].reviewed_version == version_before.label
    assert records[1].reviewed_version == records[0].figures["trained_version"]  # promoted: "always"
    snapshot.close()

    # The page and the JSON show the same rounds.
    client.force_login(User.objects.create_user("reader"))
    listed = client.get("/review/simulations/").content.decode()
    assert f'href="/review/simulations/{simulation.pk}/"' in listed
    shares = ", ".join(f"{r.share_confirmed:.2f}" for r in records)
    assert f"<td>{shares}</td>" in listed
    page = client.get(f"/review/simulations/{simulation.pk}/").content.decode()
    assert page.count('<tr data-round="') == 2 and page.count('class="round-marker"') == 2
    data = client.get(f"/review/simulations/{simulation.pk}.json").json()
    assert [r["true_links_gained"] for r in data["rounds"]] == [r.true_links_gained for r in records]
    whole = [status for status in statuses if status == "confirmed"]  # as shown, nobody unticked
    assert sum(r["share_confirmed_whole"] * r["proposals_reviewed"] for r in data["rounds"]) == pytest.approx(
        len(whole)
    )
    assert data["state"] == "finished" and data["start"]["hidden"] == len(hidden)

    # One command removes it, snapshot and records.
    folder = paths.simulation_folder(simulation.pk)
    call_command("simulate_review", "--delete", str(simulation.pk), stdout=io.StringIO())
    assert not folder.exists() and not Simulation.objects.exists()


@pytest.mark.django_db
def test_simulated_decisions_are_undoable_and_left_out_of_exports(collection, capsys):  # noqa: F811
    historian = User.objects.create_user("historian")
    simulated = User.objects.create_user(simulate.SIMULATED_USER)
    run = run_clustering(collection, ClusteringParams())
    apply_statements([Statement(pk(0), pk(19), "NEGATIVE")], source=DecisionSource.USER, user=historian)

    def export(**options) -> list[dict]:
        out = io.StringIO()
        write_connections_csv(out, **options)
        return list(csv.DictReader(io.StringIO(out.getvalue())))

    people = export(), export(history=True)
    assert "user" in {row["source"] for row in people[1]}
    proposal = proposal_with(GROUPS["G2"], run)
    decide(proposal.pk, "confirm", simulated, source=DecisionSource.SIMULATED)
    assert Connection.objects.filter(latest__source="simulated").count() == 3

    assert (export(), export(history=True)) == people
    with_simulation = export(history=True, include_simulated=True)
    assert with_simulation[: len(people[1])] == people[1]
    added = with_simulation[len(people[1]) :]
    assert [(row["source"], row["user"]) for row in added] == [("simulated", simulate.SIMULATED_USER)] * 3
    assert len(export(include_simulated=True)) == len(people[0]) + 3
    capsys.readouterr()
    call_command("export_connections", "--out", "-", "--history")
    printed = capsys.readouterr().out
    assert "simulated" not in printed and printed.count("\n") == len(people[1]) + 1

    # Undone through the same path as a person's decision: retracted, the proposal open again.
    assert undo_last(simulated).pk == proposal.pk
    assert not Connection.objects.filter(latest__source="simulated").exists()
    with pytest.raises(ValueError, match="source"):
        decide(proposal.pk, "confirm", simulated, source=DecisionSource.IMPORT)


@pytest.mark.django_db
def test_bad_simulation_requests_are_refused_before_anything_is_written(demo, tmp_path, client):
    truth = demo.folder / "ground_truth.csv"
    cases = [
        (["--truth", str(tmp_path / "missing.csv")], "no truth file"),
        (["--truth", str(truth), "--train", "epochz=1"], "unknown training option"),
        (["--truth", str(truth), "--cluster", "max_eps=7"], "max_eps"),
        (["--truth", str(truth), "--rounds", "0"], "rounds must be between"),
        (["--truth", str(truth), "--error-rate", "0.2"], "noisy policy only"),
        (["--delete", "99"], "no simulation 99"),
    ]
    bad_truth = tmp_path / "bad.csv"
    bad_truth.write_text("img1,img2,type\nx,y,POSITIVE\nz,z,POSITIVE\n")
    cases.append((["--truth", str(bad_truth)], "bad.csv:3: self-link"))
    strangers = tmp_path / "strangers.csv"
    strangers.write_text("img1,img2,type\nx,y,POSITIVE\n")
    cases.append((["--truth", str(strangers)], "none of the truth file's connections"))
    # Values checked now rather than hours later inside the snapshot; keys never silently ignored.
    cases += [
        (["--truth", str(truth), "--train", "epochs=2.5"], "training option epochs must be int"),
        (["--truth", str(truth), "--train", "lr=NaN"], "lr must be a finite number"),
        (["--truth", str(truth), "--train", "weights_file=3"], "weights_file must be str or None"),
        (["--truth", str(truth), "--cluster", "maxeps=0.3"], "unknown clustering parameter.*maxeps"),
        (["--truth", str(truth), "--cluster", "model=v9"], "unknown clustering parameter.*model"),
        # Every connection of this truth is imported as known: nothing to discover.
        (["--truth", str(demo.folder / "connections_known.csv")], "nothing is left to discover"),
    ]
    for arguments, message in cases:
        with pytest.raises(CommandError, match=message):
            call_command("simulate_review", *arguments, "--inline", stdout=io.StringIO())
    assert not Simulation.objects.exists() and not Job.objects.filter(kind="simulate_review").exists()

    # The curators' form on the page: the demo's ground truth, the same checks.
    client.force_login(User.objects.create_superuser("curator"))
    response = client.post("/review/simulations/start", {"policy": "exact"}, follow=True)
    assert "No demo ground truth here" in response.content.decode() and not Simulation.objects.exists()
    paths.demo_folder().mkdir(parents=True, exist_ok=True)
    shutil.copyfile(truth, paths.demo_folder() / "ground_truth.csv")
    response = client.post("/review/simulations/start", {"policy": "exact", "rounds": "0"}, follow=True)
    assert "Rounds must be a whole number from 1 to 50" in response.content.decode()
    assert client.post("/review/simulations/start", {"rounds": "three"}).status_code == 400
    assert client.post("/review/simulations/start", {"policy": "lenient"}).status_code == 400
    response = client.post("/review/simulations/start", {"policy": "exact", "max_eps": "seven"}, follow=True)
    assert "Max_eps must be" in response.content.decode()
    assert not Simulation.objects.exists()
    form = {
        "policy": "noisy",
        "error_percent": "20",
        "rounds": "2",
        "per_round": "5",
        "order": "confidence",
        "max_eps": "0.3",
    }
    response = client.post("/review/simulations/start", form)
    simulation = Simulation.objects.get()
    assert response.status_code == 302 and response.url == f"/review/simulations/{simulation.pk}/"
    assert (simulation.policy, simulation.error_rate, simulation.rounds, simulation.per_round) == (
        "noisy",
        0.2,
        2,
        5,
    )
    assert simulation.parameters["cluster"] == {"max_eps": 0.3}
    assert simulation.job.kind == "simulate_review" and simulation.job.params == {"simulation": simulation.pk}


def processes_running(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_simulation_stops_its_snapshot_process(demo):
    from .conftest import start_job_thread

    simulation = simulate.start(
        demo.folder / "ground_truth.csv", rounds=3, per_round=8, train={**TRAIN, "epochs": 50}
    )
    job = Job.objects.create(kind="simulate_review", params={"simulation": simulation.pk})
    thread = start_job_thread(job)
    folder = paths.simulation_folder(simulation.pk)

    def training() -> bool:
        job.refresh_from_db()
        return "training" in job.message

    wait_until(training, timeout=300, interval=0.5, message="the snapshot's first round to train")
    assert processes_running(str(folder)), "the snapshot's process is not running"
    job.request_cancel()
    thread.join(timeout=120)
    job.refresh_from_db()
    simulation.refresh_from_db()
    assert job.state == JobState.CANCELLED and simulation.state == SimulationState.CANCELLED
    wait_until(
        lambda: not processes_running(str(folder)), timeout=30, message="the snapshot's process to end"
    )
    assert simulation.round_records.count() == 0  # it was stopped inside round 1


@pytest.mark.django_db
def test_a_simulation_follows_a_job_that_ended_without_it(demo, client):
    """Cancelled while queued, or reaped after its worker died: the handler never ran, and the simulation
    must not show "Running" (and its page poll) for ever."""
    client.force_login(User.objects.create_user("reader"))
    truth = demo.folder / "ground_truth.csv"
    queued = simulate.start(truth, rounds=1)
    queued.job = Job.objects.create(kind="simulate_review", params={"simulation": queued.pk})
    queued.save()
    reaped = simulate.start(truth, rounds=1)
    reaped.job = Job.objects.create(kind="simulate_review", params={"simulation": reaped.pk})
    reaped.save()
    assert client.get(f"/review/simulations/{queued.pk}.json").json()["state"] == "running"

    queued.job.request_cancel()
    Job.objects.filter(pk=reaped.job_id).update(state=JobState.FAILED, message="Worker stopped responding")
    assert client.get(f"/review/simulations/{queued.pk}.json").json()["state"] == "cancelled"
    page = client.get(f"/review/simulations/{reaped.pk}/").content.decode()
    assert 'data-state="failed"' in page and "Worker stopped responding" in page
    reaped.refresh_from_db()
    assert reaped.state == SimulationState.FAILED
    listing = io.StringIO()
    call_command("simulate_review", "--list", stdout=listing)
    assert listing.getvalue().count("cancelled") == 1 and listing.getvalue().count("failed") == 1
    call_command("simulate_review", "--delete", str(queued.pk), stdout=io.StringIO())  # no longer running


@pytest.mark.django_db
def test_the_truth_is_the_file_as_it_was_at_the_start(demo, tmp_path):
    truth = tmp_path / "truth.csv"
    shutil.copyfile(demo.folder / "ground_truth.csv", truth)
    simulation = simulate.start(truth, rounds=1)
    with truth.open("a") as handle:
        handle.write("someone,else,POSITIVE\n")
    job = Job.objects.create(kind="simulate_review", params={"simulation": simulation.pk})
    from jobs.runner import execute

    execute(job, follow_ups="none")
    job.refresh_from_db()
    simulation.refresh_from_db()
    assert job.state == JobState.FAILED and "changed since the simulation was started" in job.message
    assert simulation.state == SimulationState.FAILED and not simulation.round_records.exists()


@pytest.mark.django_db
def test_the_snapshot_keeps_no_password_hash(demo, tmp_path):
    User.objects.create_user("historian", password="a long secret passphrase")
    simulation = simulate.start(demo.folder / "ground_truth.csv", rounds=1)
    simulate.write_snapshot(simulation, tmp_path / "snapshot")
    users = [
        row["fields"]
        for row in json.loads((tmp_path / "snapshot" / "snapshot.json").read_text())
        if row["model"] == "auth.user"
    ]
    assert [u["username"] for u in users] == ["historian"] and {u["password"] for u in users} == {"!"}
