from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.cli import add_worker_arguments, run_worker_job
from review.models import Simulation
from review.simulation import ORDERS, POLICIES, TruthFileError
from workbench import paths


def key_values(pairs: list[str] | None, option: str) -> dict:
    """KEY=VALUE options; VALUE read as JSON when it is JSON (numbers, true), else as text."""
    out = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"{option} takes KEY=VALUE, got {pair!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if isinstance(value, float) and not math.isfinite(value):
            # json.loads takes NaN and Infinity; the database refuses them in JSON: a traceback.
            raise CommandError(f"{option} {key.strip()} must be a finite number, got {raw!r}")
        out[key.strip().replace("-", "_")] = value
    return out


def print_rounds(command: BaseCommand, simulation: Simulation) -> None:
    def f(value, digits=2):
        return "–" if value is None else f"{value:.{digits}f}"

    command.stdout.write(
        f"{simulation.label}: policy {simulation.policy_label}, order {simulation.order}, "
        f"{simulation.per_round} proposals per round, {simulation.get_state_display().lower()}"
    )
    start = simulation.start or {}
    if start:
        command.stdout.write(
            f"  {start.get('hidden', '?')} hidden true pairs to discover "
            f"({start.get('known_at_start', '?')} known at the start), "
            f"snapshot of {start.get('artworks', '?')} artworks, "
            f"first model {start.get('model_version', '?')}"
        )
    command.stdout.write(
        "round  model  shown  reviewed  confirmed  share  links/proposal  discovered  wrong links  seconds"
    )
    for r in simulation.round_records.order_by("number"):
        seconds = sum((r.figures.get("seconds") or {}).values())
        command.stdout.write(
            f"{r.number:>5}  {r.reviewed_version:>5}  {r.proposals_shown:>5}  {r.proposals_reviewed:>8}  "
            f"{r.confirmed:>9}  {f(r.share_confirmed):>5}  {f(r.links_per_proposal):>14}  "
            f"{f(r.discovered_share, 3):>10}  {r.wrong_links_accepted:>11}  {seconds:>7.0f}"
        )


class Command(BaseCommand):
    help = (
        "Simulate a historian who answers proposals from a ground-truth connections file, round after round "
        "(review → train → signatures → cluster), in a snapshot of the collection, and record what each "
        "round yielded. Queued for a worker; --wait follows it, --inline runs here."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--truth", help="ground-truth connections (morphograph CSV); default: the demo's ground_truth.csv"
        )
        parser.add_argument("--rounds", type=int, default=3)
        parser.add_argument("--per-round", type=int, default=50, dest="per_round", help="proposals reviewed")
        parser.add_argument("--policy", choices=POLICIES, default="exact")
        parser.add_argument("--error-rate", type=float, default=None, dest="error_rate", help="noisy policy")
        parser.add_argument("--order", choices=ORDERS, default="rank", help="review order of the queue")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--cluster", action="append", metavar="KEY=VALUE", help="clustering parameter (max_eps=0.2)"
        )
        parser.add_argument(
            "--train", action="append", metavar="KEY=VALUE", help="training option of each round (epochs=3)"
        )
        parser.add_argument(
            "--promote",
            choices=("gate", "always"),
            default="gate",
            help="gate: a round's model is used when the gate promotes it (as in the workbench); "
            "always: as if a curator promoted every round's model",
        )
        parser.add_argument("--list", action="store_true", help="list the simulations and their rounds")
        parser.add_argument("--delete", type=int, metavar="ID", help="remove a simulation and its snapshot")
        parser.add_argument("--sandbox", help=argparse.SUPPRESS)  # the child process inside a snapshot
        add_worker_arguments(parser)

    def handle(self, *args, **options) -> None:
        from review import simulate

        if options["sandbox"]:
            simulate.run_in_sandbox(Path(options["sandbox"]))
            return
        if options["list"]:
            for simulation in Simulation.objects.select_related("job").order_by("pk"):
                print_rounds(self, simulation.reconcile())
            return
        if options["delete"] is not None:
            simulation = Simulation.objects.select_related("job").filter(pk=options["delete"]).first()
            if simulation is None:
                raise CommandError(f"no simulation {options['delete']}")
            try:
                simulate.delete(simulation)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"Deleted simulation {options['delete']} and its snapshot")
            return
        truth = options["truth"]
        if truth is None:
            demo_truth = paths.demo_folder() / "ground_truth.csv"
            if not demo_truth.is_file():
                raise CommandError("give --truth FILE.csv (no demo ground truth in the data folder)")
            truth = demo_truth
        if not Path(truth).is_file():
            raise CommandError(f"no truth file {truth}")
        try:
            simulation = simulate.start(
                Path(truth),
                policy=options["policy"],
                error_rate=options["error_rate"]
                if options["error_rate"] is not None
                else (0.1 if options["policy"] == "noisy" else 0.0),
                order=options["order"],
                rounds=options["rounds"],
                per_round=options["per_round"],
                seed=options["seed"],
                cluster=key_values(options["cluster"], "--cluster"),
                train=key_values(options["train"], "--train"),
                promote=options["promote"],
            )
        except (ValueError, TruthFileError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Simulation {simulation.pk}: snapshot in {paths.simulation_folder(simulation.pk)}")
        job = None
        try:
            job = run_worker_job(self, "simulate_review", {"simulation": simulation.pk}, options)
        finally:
            if job is not None:
                Simulation.objects.filter(pk=simulation.pk, job__isnull=True).update(job=job)
        simulation.refresh_from_db()
        if simulation.round_records.exists():
            print_rounds(self, simulation)
