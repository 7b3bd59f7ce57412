"""What round 0's proposals can reveal, per clustering setting: the pretrained signatures of the demo and of
a People-Art development collection clustered with each setting, and every proposal answered by the
simulated historian's `exact` policy (the members of the largest true group linked). Printed per setting:
proposals, the share holding a true group, the share of the hidden connections their links would join,
the verified pairs, and the seconds of the run.

This bounds what a review round can find before any training, and costs minutes where `loop_yield.py`
costs an hour: the radius and verify_top were chosen with it, on both sets together.

    .venv/bin/python bench/round0_proposals.py
    .venv/bin/python bench/round0_proposals.py --dataset demo --settings max_eps=0.2,verify_top=0 max_eps=0.2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from signature_quality import add_peopleart_arguments  # noqa: E402
from timing import machine_line  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = [
    "max_eps=0.13,verify_top=0",
    "max_eps=0.2,verify_top=0",
    "max_eps=0.3,verify_top=0",
    "max_eps=0.13",
    "max_eps=0.2",
    "max_eps=0.3",
    "max_eps=0.13,verify_top=20",
]


def parse(setting: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in setting.split(",") if part)


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from signature_quality import import_demo, import_peopleart

    from annotations.models import Artwork
    from clustering.algorithms import ClusteringParams
    from clustering.runs import run_clustering
    from review.simulate import known_state
    from review.simulation import Truth, answer, components_by_id, discovered, hidden_pairs
    from training.models import ModelVersion
    from training.rounds import extract_for_version

    folder = Path(args.child) / "dataset"
    if args.dataset == "demo":
        import_demo(folder)
    else:
        import_peopleart(folder, args.data, args.sources, args.seed, hidden=True)
    extract_for_version(None)
    version = ModelVersion.objects.get(number=0)
    truth = Truth.load(folder / "ground_truth.csv")
    component_of, _ = known_state()
    external = dict(Artwork.objects.values_list("pk", "external_id"))
    first_of: dict[int, str] = {}
    known_links = [(first_of.setdefault(c, a), a) for a, c in component_of.items()]  # a star per component
    _, hidden = hidden_pairs(truth, external.values(), component_of)
    rows = []
    for setting in args.settings:
        started = time.perf_counter()
        run = run_clustering(version, ClusteringParams.from_values(parse(setting)))
        seconds = time.perf_counter() - started
        links, confirmed = [], 0
        proposals = list(run.proposals.prefetch_related("members"))
        for proposal in proposals:
            members = [
                external[m.artwork_id] for m in sorted(proposal.members.all(), key=lambda m: m.position)
            ]
            reply = answer("exact", members, truth)
            if reply.action != "reject":
                confirmed += 1
                ticked = [members[p] for p in reply.ticked]
                links += [(ticked[0], other) for other in ticked[1:]]
        found = discovered(hidden, components_by_id([*known_links, *links]))
        rows.append(
            {
                "setting": setting,
                "proposals": len(proposals),
                "confirmed": confirmed,
                "discovered": len(found),
                "hidden": len(hidden),
                "verification": run.metrics.get("verification"),
                "seconds": round(seconds, 1),
            }
        )
    print(json.dumps(rows))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=("demo", "peopleart", "both"), default="both")
    parser.add_argument("--settings", nargs="+", default=SETTINGS, metavar="KEY=VALUE,...")
    add_peopleart_arguments(parser, sources=100)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(machine_line())
    for dataset in ("demo", "peopleart") if args.dataset == "both" else (args.dataset,):
        with tempfile.TemporaryDirectory(prefix=f"round0-{dataset}-") as scratch:
            env = {**os.environ, "DEBUG": "1", "WORKBENCH_DATA_DIR": scratch}
            for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
                env.pop(name, None)
            command = [sys.executable, __file__, f"--child={scratch}", f"--dataset={dataset}"]
            command += [
                f"--sources={args.sources}",
                f"--seed={args.seed}",
                f"--data={args.data}",
                "--settings",
            ]
            output = subprocess.run(
                [*command, *args.settings], cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True
            ).stdout
            rows = json.loads(output.strip().splitlines()[-1])
        print(f"\n{dataset}: {rows[0]['hidden']} hidden connections; every round-0 proposal reviewed (exact)")
        print("| setting | proposals | holding a true group | hidden found | verified pairs | seconds |")
        print("|---|---:|---:|---:|---:|---:|")
        for row in rows:
            verified = row["verification"]
            pairs = f"{verified['verified']} of {verified['candidates']}" if verified else "–"
            print(
                f"| {row['setting']} | {row['proposals']} | {row['confirmed']} | "
                f"{row['discovered'] / row['hidden']:.1%} ({row['discovered']}/{row['hidden']}) | {pairs} | "
                f"{row['seconds']} |"
            )


if __name__ == "__main__":
    main()
