"""Server time of the review page and the proposal queue at scale, in PostgreSQL, under 20 concurrent clients,
with the database connection kept between requests (the settings' default) and opened anew for each request.

Builds (once; kept between runs) a PostgreSQL database with 100,000 artworks, 20,000 known connections, a
model version and a clustering run of 10,000 proposals of 2–8 members, logs a user in, and then, --runs times
(default 3) for each of two settings, starts gunicorn on it (production settings, 3 worker processes on this
2-core machine) and lets 20 client threads request, for `--seconds`: the review page of a random proposal, the
queue (random kind filter and page), and every tenth request /healthz. The two settings are

* kept: DB_CONN_MAX_AGE unset, so the settings' default for PostgreSQL (60 s): a worker keeps its connection;
* per-request: DB_CONN_MAX_AGE=0: Django opens a connection for each request and closes it at the end.

They alternate run by run (kept, per-request; per-request, kept; ...), each run on a freshly started server
after a 3-second warm-up, so a slow minute of this noisy machine hurts both alike. For each setting it prints
p50/p95/p99 per page, as the median over the runs with the lowest and highest run: the server time (the
Server-Timing header: every middleware, the view and the template, not the wait for a free worker; a
connection is opened lazily inside the request, so its cost is in there) and the latency the clients see. The
ratio per-request / kept is the median of the per-round ratios (run i of both settings, back to back). Also
printed: the p95 against the 150 ms target, /healthz under the same load as the baseline (what the server, the
network stack and the clients cost without the page's work; /healthz runs `SELECT 1`, so with a connection per
request it pays for opening one too), the cost of opening one connection from an unloaded process, the number
of SQL queries each page makes (bounded: no query per row), and whether opening a connection per request costs
more than rendering the review page (the claim of workbench/settings.py): the per-round increase of the review
page's median server time against that median with a kept connection.

At full size the measurement takes about 4 minutes (2 settings × 3 runs × ~36 s) once the database is built;
the first build of 100,000 artworks takes a few minutes more.

    .venv/bin/python bench/review_latency.py [--database-url postgres://postgres@127.0.0.1:5432/workbench_bench]
        [--artworks 100000] [--proposals 10000] [--clients 20] [--seconds 30] [--runs 3] [--rebuild]
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from placeholders import placeholder_artworks
from timing import Samples, add_runs_argument, check_runs, machine_line, paired_ratio, show_ratio

ROOT = Path(__file__).resolve().parent.parent
PORT = 8799
TARGET_MS = 150.0
PAGES = ("review", "queue", "healthz")
SHARES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
KEPT, PER_REQUEST = "kept", "per-request"
# The server's DB_CONN_MAX_AGE: None leaves it unset, so that the settings' own default is what is measured.
SETTINGS: dict[str, str | None] = {KEPT: None, PER_REQUEST: "0"}
CONNECTS_PER_RUN = 50


def ensure_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')


def populate(artworks: int, proposals: int, rebuild: bool) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from annotations.models import Artwork, Collection, Connection, ConnectionDecision
    from clustering.models import ClusteringRun, Proposal, ProposalMember
    from training.models import ModelVersion

    call_command("migrate", verbosity=0)
    if not rebuild and Artwork.objects.count() == artworks and Proposal.objects.count() == proposals:
        print(f"database ready: {artworks:,} artworks, {proposals:,} proposals (kept from an earlier run)")
        return
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE clustering_proposalmember, clustering_proposal, clustering_clusteringrun, "
            "annotations_connection, annotations_retraction, annotations_connectiondecision, "
            "annotations_artwork, annotations_collection, training_modelversion, jobs_job CASCADE"
        )
    rng = random.Random(7)
    collection = Collection.objects.create(name="Bench")
    authors = [f"Painter {i}" for i in range(2000)]
    ids = placeholder_artworks(
        collection,
        artworks,
        author=lambda i: rng.choice(authors),
        date_text=lambda i: f"ca. {1400 + i % 300}",
        date_begin=lambda i: 1400 + i % 300,
        split=lambda i: rng.choice(["", "", "train", "val", "test"]),
    )
    pairs = set()
    while len(pairs) < 20000:
        a, b = rng.sample(ids, 2)
        pairs.add((min(a, b), max(a, b)))
    decisions = ConnectionDecision.objects.bulk_create(
        [
            ConnectionDecision(
                uid=f"bench-{n}",
                artwork_a_id=a,
                artwork_b_id=b,
                type="POSITIVE",
                source="import",
                annotated_at="2026-01-01T00:00:00Z",
            )
            for n, (a, b) in enumerate(sorted(pairs))
        ],
        batch_size=5000,
    )
    Connection.objects.bulk_create(
        [
            Connection(artwork_a_id=d.artwork_a_id, artwork_b_id=d.artwork_b_id, type=d.type, latest=d)
            for d in decisions
        ],
        batch_size=5000,
    )
    version = ModelVersion.objects.create(
        number=0,
        backbone="resnext50_32x4d",
        weights_kind="random",
        weights_description="bench",
        signature_dim=2048,
        is_active=True,
    )
    run = ClusteringRun.objects.create(
        model_version=version,
        algorithm="optics",
        params={"max_eps": 0.13},
        artwork_count=artworks,
        cluster_count=proposals,
        noise_share=0.7,
    )
    kinds = ["new_group", "extends", "merges", "contains_rejected"]
    made = Proposal.objects.bulk_create(
        [
            Proposal(
                run=run,
                label=n,
                kind=kinds[n % 4],
                size=0,
                confidence=rng.random(),
                new_links=rng.randint(1, 5),
                new_pairs=rng.randint(1, 10),
                review_value=rng.random(),
                rank=n + 1,
            )
            for n in range(proposals)
        ],
        batch_size=5000,
    )
    members, cursor_ = [], 0
    shuffled = ids[:]
    rng.shuffle(shuffled)
    for proposal in made:
        size = rng.randint(2, 8)
        chosen = shuffled[cursor_ : cursor_ + size]
        cursor_ += size
        proposal.size = len(chosen)
        members += [
            ProposalMember(proposal=proposal, artwork_id=a, strength=rng.random(), position=k)
            for k, a in enumerate(chosen)
        ]
    ProposalMember.objects.bulk_create(members, batch_size=10000)
    Proposal.objects.bulk_update(made, ["size"], batch_size=5000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"built {artworks:,} artworks, 20,000 connections, {proposals:,} proposals "
        f"in {time.perf_counter() - started:.0f} s"
    )


def count_queries(proposal_id: int) -> dict[str, int]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user, _ = User.objects.get_or_create(username="bench")
    client = Client()
    client.force_login(user)
    counts = {}
    for name, url in (("review", f"/review/{proposal_id}/"), ("queue", "/review/?kind=extends&page=7")):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url, secure=True)
        assert response.status_code == 200, (url, response.status_code)
        counts[name] = len(captured)
    return counts


def session_cookie() -> str:
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    user, _ = User.objects.get_or_create(username="bench")
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def client_loop(cookie: str, proposal_ids: list[int], pages: int, stop: float, out: dict, seed: int) -> None:
    rng = random.Random(seed)
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    kinds = ["", "new_group", "extends", "merges", "contains_rejected"]
    n = 0
    while time.perf_counter() < stop:
        n += 1
        if n % 10 == 0:
            name, url = "healthz", "/healthz"
        elif n % 2:
            name, url = "review", f"/review/{rng.choice(proposal_ids)}/"
        else:
            kind = rng.choice(kinds)
            name, url = "queue", f"/review/?kind={kind}&page={rng.randint(1, pages)}"
        started = time.perf_counter()
        connection.request("GET", url, headers={"Cookie": cookie, "X-Forwarded-Proto": "https"})
        response = connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        timing = re.search(r"dur=([0-9.]+)", response.getheader("Server-Timing") or "")
        if response.status != 200:
            out.setdefault("errors", []).append((url, response.status, body[:200]))
            continue
        out.setdefault(name, []).append(elapsed)
        if timing:
            out.setdefault(name + "-server", []).append(float(timing.group(1)))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def connect_cost_ms() -> float:
    """Median time of opening a Django database connection (connect, session set-up) in this idle process."""
    from django.db import connection

    connection.close()
    times = []
    for _ in range(CONNECTS_PER_RUN):
        started = time.perf_counter()
        connection.connect()
        times.append((time.perf_counter() - started) * 1000)
        connection.close()
    return statistics.median(times)


def start_server(env: dict[str, str], workers: int, conn_max_age: str | None) -> subprocess.Popen:
    server_env = {k: v for k, v in env.items() if k != "DB_CONN_MAX_AGE"}
    if conn_max_age is not None:
        server_env["DB_CONN_MAX_AGE"] = conn_max_age
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "workbench.wsgi",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=server_env,
    )
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        try:
            probe = http.client.HTTPConnection("127.0.0.1", PORT, timeout=2)
            probe.request("GET", "/healthz")
            if probe.getresponse().status == 200:
                return server
        except OSError:
            pass
        if server.poll() is not None:
            break
        time.sleep(0.2)
    stop_server(server)
    raise SystemExit(f"gunicorn (DB_CONN_MAX_AGE={conn_max_age}) did not answer /healthz within 30 s")


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def measure_run(
    env: dict[str, str],
    conn_max_age: str | None,
    cookie: str,
    proposal_ids: list[int],
    args: argparse.Namespace,
) -> dict:
    """One run of one setting on a freshly started server: the raw times per page, errors and requests/s."""
    server = start_server(env, args.workers, conn_max_age)
    try:
        pages = max(1, args.proposals // 50)
        # Warm-up: every worker imports its views and fills its caches before timing starts.
        warm: dict = {}
        client_loop(cookie, proposal_ids, pages, time.perf_counter() + 3, warm, 0)
        results: dict = {}
        stop = time.perf_counter() + args.seconds
        threads = [
            threading.Thread(target=client_loop, args=(cookie, proposal_ids, pages, stop, results, seed))
            for seed in range(1, args.clients + 1)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop_server(server)
    total = sum(len(results.get(page, [])) for page in PAGES)
    results["requests/s"] = total / args.seconds
    return results


def summarise(runs: list[dict]) -> dict[tuple[str, str, str], Samples]:
    """{(series, page, "p95"): the percentile of each run}, series being "server" or "client"."""
    summary = {}
    for page in PAGES:
        for series, key in (("server", page + "-server"), ("client", page)):
            if not all(run.get(key) for run in runs):
                continue  # a run without a figure for it (no Server-Timing header, or no request in time)
            for label, share in SHARES.items():
                summary[series, page, label] = Samples.of([percentile(run[key], share) for run in runs])
    return summary


def report_setting(summary: dict[tuple[str, str, str], Samples], series: str) -> None:
    for page in PAGES:
        if (series, page, "p50") not in summary:
            continue
        cells = "  ".join(f"{label} {summary[series, page, label].show('ms', 1)}" for label in SHARES)
        line = f"      {page:<8} {cells}"
        if page != "healthz":
            line += f"  p95/target {summary[series, page, 'p95'].median / TARGET_MS:.2f}"
        print(line)


def report_ratios(
    kept: dict[tuple[str, str, str], Samples], per_request: dict[tuple[str, str, str], Samples], series: str
) -> None:
    for page in PAGES:
        if (series, page, "p50") not in kept or (series, page, "p50") not in per_request:
            continue
        cells = "  ".join(
            f"{label} {show_ratio(paired_ratio(per_request[series, page, label], kept[series, page, label]))}"
            for label in SHARES
        )
        print(f"      {page:<8} {cells}")


def verdict(
    kept: dict[tuple[str, str, str], Samples], per_request: dict[tuple[str, str, str], Samples]
) -> None:
    """Whether a connection per request costs more than rendering the review page, round by round."""
    key = ("server", "review", "p50")
    if key not in kept or key not in per_request:
        print(
            "claim of workbench/settings.py: no Server-Timing figures for the review page, nothing to compare"
        )
        return
    added = [a - b for a, b in zip(per_request[key].values, kept[key].values, strict=True)]
    rendering = kept[key].values
    more = sum(extra > render for extra, render in zip(added, rendering, strict=True))
    if more == len(added):
        outcome = "holds in every round"
    elif more == 0:
        outcome = "does NOT hold in any round"
    else:
        outcome = f"holds in {more} of {len(added)} rounds only"
    print(
        "claim of workbench/settings.py (opening a connection per request costs more than rendering the "
        f"review page): {outcome}: a connection per request added {Samples.of(added).show('ms', 1)} "
        f"to the review page's median server time, which is {kept[key].show('ms', 1)} with a kept connection"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/workbench_bench")
    parser.add_argument("--artworks", type=int, default=100_000)
    parser.add_argument("--proposals", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true")
    add_runs_argument(parser)
    args = parser.parse_args()
    print(machine_line())
    check_runs(args.runs)

    data_dir = Path(tempfile.mkdtemp(prefix="bench-review-"))
    # Only collected static files and the server's scratch space: nothing worth keeping after the run.
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "workbench.settings",
        "DATABASE_URL": args.database_url,
        "WORKBENCH_DATA_DIR": str(data_dir),
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "STATIC_ROOT": str(data_dir / "static"),
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    }
    # An inherited DB_CONN_MAX_AGE would silently turn "kept" into something else than the settings' default.
    env.pop("DB_CONN_MAX_AGE", None)
    os.environ.pop("DB_CONN_MAX_AGE", None)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    ensure_database(args.database_url)
    populate(args.artworks, args.proposals, args.rebuild)
    from django.conf import settings

    from clustering.models import Proposal

    default_age = settings.DATABASES["default"]["CONN_MAX_AGE"]
    labels = {KEPT: f"CONN_MAX_AGE={default_age} (settings default)", PER_REQUEST: "CONN_MAX_AGE=0"}
    proposal_ids = list(Proposal.objects.values_list("pk", flat=True))
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    print("SQL queries per page:", count_queries(proposal_ids[len(proposal_ids) // 2]))
    cookie = session_cookie()
    connect = Samples.of([connect_cost_ms() for _ in range(args.runs)])
    print(
        f"opening a PostgreSQL connection from an idle process (median of {CONNECTS_PER_RUN} per run): "
        f"{connect.show('ms', 2)}"
    )

    runs: dict[str, list[dict]] = {KEPT: [], PER_REQUEST: []}
    orders = []
    for round_ in range(args.runs):
        # Alternate which setting goes first (A B, B A, A B...): neither always gets the quieter half.
        order = (KEPT, PER_REQUEST) if round_ % 2 == 0 else (PER_REQUEST, KEPT)
        orders.append(" ".join(order))
        for name in order:
            result = measure_run(env, SETTINGS[name], cookie, proposal_ids, args)
            runs[name].append(result)
            print(
                f"  run {round_ + 1}/{args.runs} {labels[name]}: {result['requests/s']:.0f} requests/s, "
                f"review server p50 {percentile(result.get('review-server', [0.0]), 0.5):.1f} ms",
                flush=True,
            )

    for name in (KEPT, PER_REQUEST):
        errors = [error for run in runs[name] for error in run.get("errors", [])]
        if errors:
            print(f"errors with {labels[name]} ({len(errors)}):", errors[:5])
    summaries = {name: summarise(runs[name]) for name in (KEPT, PER_REQUEST)}
    rates = {name: Samples.of([run["requests/s"] for run in runs[name]]) for name in (KEPT, PER_REQUEST)}
    print(
        f"{args.clients} clients for {args.seconds:.0f} s per run against gunicorn ({args.workers} workers), "
        f"PostgreSQL, {args.artworks:,} artworks, {args.proposals:,} proposals; "
        f"{args.runs} run(s) per setting, rounds: {' | '.join(orders)}"
    )
    for name in (KEPT, PER_REQUEST):
        print(f"  {labels[name]}: {rates[name].show('requests/s', 0)}")
    print(f"  throughput per-request / kept: {show_ratio(paired_ratio(rates[PER_REQUEST], rates[KEPT]))}")
    for series, title in (
        (
            "server",
            "server time (Server-Timing: in Django, every middleware included, no wait for a free worker)",
        ),
        ("client", "latency seen by the clients (server time + waiting for a worker + network)"),
    ):
        print(f"  {title}, median over runs (lowest–highest run):")
        for name in (KEPT, PER_REQUEST):
            print(f"    {labels[name]}:")
            report_setting(summaries[name], series)
        print(f"    {labels[PER_REQUEST]} / {labels[KEPT]}, median of the per-round ratios (lowest–highest):")
        report_ratios(summaries[KEPT], summaries[PER_REQUEST], series)
    for name in (KEPT, PER_REQUEST):
        summary = summaries[name]
        if ("client", "healthz", "p95") not in summary:
            continue
        baseline = summary["client", "healthz", "p95"]
        for page in ("review", "queue"):
            if ("client", page, "p95") in summary:
                print(
                    f"  {labels[name]}: {page} p95 is "
                    f"{paired_ratio(summary['client', page, 'p95'], baseline).median:.1f}× "
                    "the p95 of /healthz under the same load"
                )
    verdict(summaries[KEPT], summaries[PER_REQUEST])


if __name__ == "__main__":
    main()
