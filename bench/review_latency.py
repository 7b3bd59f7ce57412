"""Server time of the review page and the proposal queue at scale, in PostgreSQL, under 20 concurrent clients.

Builds (once; kept between runs) a PostgreSQL database with 100,000 artworks, 20,000 known connections, a
model version and a clustering run of 10,000 proposals of 2–8 members, starts gunicorn on it (production
settings, 3 worker processes on this 2-core machine), logs a user in, and lets 20 client threads request, for
`--seconds`: the review page of a random proposal, and the queue (random kind filter and page). It prints
p50/p95/p99 per page, the p95 against the 150 ms target, /healthz under the same load as the baseline (what
the server, the network stack and the clients cost without the page's work), and the number of SQL queries
each page makes (bounded: no query per row).

    .venv/bin/python bench/review_latency.py [--database-url postgres://postgres@127.0.0.1:5432/workbench_bench]
        [--artworks 100000] [--proposals 10000] [--clients 20] [--seconds 30] [--rebuild]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
PORT = 8799
TARGET_MS = 150.0


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
    Artwork.objects.bulk_create(
        [
            Artwork(
                external_id=f"bench-{i}",
                collection=collection,
                image_sha256=f"{i:064x}",
                image_ext="jpg",
                source_path=f"img/{i}.jpg",
                width=800,
                height=600,
                title=f"Composition {i}",
                author=rng.choice(authors),
                date_text=f"ca. {1400 + i % 300}",
                date_begin=1400 + i % 300,
                split=rng.choice(["", "", "train", "val", "test"]),
            )
            for i in range(artworks)
        ],
        batch_size=5000,
    )
    ids = list(Artwork.objects.order_by("pk").values_list("pk", flat=True))
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


def report_line(name: str, values: list[float]) -> None:
    if not values:
        return
    p95 = percentile(values, 0.95)
    line = (
        f"    {name:<8} n={len(values):>5}  p50 {percentile(values, 0.5):6.1f} ms  p95 {p95:6.1f} ms  "
        f"p99 {percentile(values, 0.99):6.1f} ms"
    )
    if name != "healthz":
        line += f"  p95/target {p95 / TARGET_MS:.2f}"
    print(line)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/workbench_bench")
    parser.add_argument("--artworks", type=int, default=100_000)
    parser.add_argument("--proposals", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-review-"))
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
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    ensure_database(args.database_url)
    populate(args.artworks, args.proposals, args.rebuild)
    from clustering.models import Proposal

    proposal_ids = list(Proposal.objects.values_list("pk", flat=True))
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    print("SQL queries per page:", count_queries(proposal_ids[len(proposal_ids) // 2]))
    cookie = session_cookie()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "workbench.wsgi",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        for _ in range(100):
            try:
                probe = http.client.HTTPConnection("127.0.0.1", PORT, timeout=2)
                probe.request("GET", "/healthz")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
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
        server.terminate()
        server.wait(timeout=10)
    if results.get("errors"):
        print("errors:", results["errors"][:5])
    total = sum(len(results.get(k, [])) for k in ("review", "queue", "healthz"))
    print(
        f"{args.clients} clients for {args.seconds:.0f} s against gunicorn ({args.workers} workers), "
        "PostgreSQL, "
        f"{args.artworks:,} artworks, {args.proposals:,} proposals: {total / args.seconds:.0f} requests/s"
    )
    print("  server time (Server-Timing: in Django, every middleware included, no wait for a free worker):")
    for name in ("review", "queue", "healthz"):
        report_line(name, results.get(name + "-server", []))
    print("  latency seen by the clients (server time + waiting for a worker + network):")
    for name in ("review", "queue", "healthz"):
        report_line(name, results.get(name, []))
    baseline = percentile(results.get("healthz", [1.0]), 0.95)
    for name in ("review", "queue"):
        if results.get(name):
            print(
                f"  {name} p95 is {percentile(results[name], 0.95) / baseline:.1f}× "
                "the p95 of /healthz under the same load"
            )


if __name__ == "__main__":
    main()
