"""The map page (`/map/`) at scale in headless Chromium: how long it takes to load and draw, and to redraw per
zoom step, with 100,000 points against 1,000.

For each size it builds, in a throwaway data folder and SQLite database of its own (or a PostgreSQL database
`<name>_map<points>` next to the one `--database-url` names, dropped afterwards), a collection of that many
artworks (bulk inserts), a model version with a stored 2-D map (synthetic coordinates shaped like a UMAP:
islands of points, 10 % without a year) and an automatic clustering run whose labels colour the points
(30 % of the points in clusters of 2–6, as OPTICS gives on the thesis parameters; one proposal per cluster, a
fifth of them reviewed). A real UMAP of 100,000 signatures would take minutes and draw the same: the page
reads coordinates and labels, never how they were made. It then serves each database with gunicorn
(production settings), logs a user in through the login form in Debian's Chromium (driven by Playwright), and
measures, `--runs` times per size with a fresh page each time (a new tab of the same logged-in browser, so
map.js and the CSS come from the HTTP cache as on any visit but the first; the map JSON is never cached),
sizes alternated, after one unrecorded warm-up load each:

- load and draw: from navigation start until the frame after map.js has drawn the points (the page marks
  that it has drawn them by setting `data-points` on the canvas: a MutationObserver sees it, then one
  requestAnimationFrame and one task later the frame holding them, its canvas rasterised in software, has
  been produced), with where the time goes (page and script, the map JSON and its server time, parsing and
  drawing, the frame);
- redraw per zoom step: the mean over `--zoom-steps` real wheel events over the canvas centre (half zooming
  in, half out, each waiting for its frame) from the event reaching the page to the frame after the redraw,
  the part the wheel handler (the redraw's script) takes, and the slowest step (the whole map in view).

Nothing in the app is changed or hooked: everything is observed from an init script. It prints the machine,
the Chromium version, both sizes' figures and the scale cost (how many times longer the large map takes; it
has `--points / --baseline-points` times the points). The default run takes about 2 minutes on a 2-core
machine, 40 s of it building the 100,000 artworks.

    .venv/bin/python bench/map_render.py [--points 100000] [--baseline-points 1000] [--runs 3]
        [--zoom-steps 20] [--database-url postgres://postgres@127.0.0.1:5432/workbench_bench]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from placeholders import placeholder_artworks
from timing import Samples, add_runs_argument, check_runs, machine_line, paired_ratio, show_ratio

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PORTS = (8811, 8812)
USERNAME, PASSWORD = "bench", "a-long-benchmark-password"
CLUSTERED_SHARE = 0.3
REVIEWED_SHARE = 0.2

# Runs in every page before its own scripts. map.js sets `canvas.dataset.points` right after its first
# draw(); the frame that shows the points is produced after the next requestAnimationFrame callbacks, so a
# task posted from one of them runs once that frame is done. Wheel events are seen before the canvas's
# handler (capture on window) and after it (bubble on window: the handler prevents the default, it does not
# stop the event).
OBSERVER = """
(() => {
  const bench = window.__mapBench = { drawn: null, painted: null, points: null, steps: [] };
  const afterFrame = (done) => requestAnimationFrame(() => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => done(performance.now());
    channel.port2.postMessage(null);
  });
  new MutationObserver(() => {
    const canvas = document.getElementById("map-canvas");
    if (bench.drawn !== null || !canvas || !canvas.dataset.points) return;
    bench.drawn = performance.now();
    bench.points = Number(canvas.dataset.points);
    afterFrame((t) => { bench.painted = t; });
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-points"] });
  window.addEventListener("wheel", () => { bench.steps.push({ start: performance.now() }); },
    { capture: true, passive: true });
  window.addEventListener("wheel", () => {
    const step = bench.steps[bench.steps.length - 1];
    step.handled = performance.now();
    afterFrame((t) => { step.painted = t; });
  }, { passive: true });
})();
"""

LOAD_FIGURES = """
() => {
  const bench = window.__mapBench;
  const json = performance.getEntriesByType("resource").find((e) => /\\/map\\/\\d+\\.json/.test(e.name));
  const server = json && json.serverTiming.find((t) => t.name === "app");
  return {
    painted: bench.painted, drawn: bench.drawn, points: bench.points,
    status: document.getElementById("map-status").textContent,
    json_start: json ? json.startTime : null, json_end: json ? json.responseEnd : null,
    json_bytes: json ? json.encodedBodySize : null, server: server ? server.duration : null,
  };
}
"""


# --- building one size's data (in a child process: Django's settings name one data folder) --------------


def layout_and_clusters(count: int, seed: int):
    """Synthetic map coordinates (islands, like a UMAP of signatures), years, and cluster labels/strengths."""
    import numpy as np

    rng = np.random.default_rng(seed)
    islands = max(1, min(60, count // 200))
    centres = rng.uniform(-12, 12, size=(islands, 2))
    spread = rng.uniform(0.3, 1.6, size=islands)
    island = rng.choice(islands, size=count, p=rng.dirichlet(np.ones(islands) * 2))
    xy = centres[island] + rng.normal(size=(count, 2)) * spread[island, None]
    labels = np.full(count, -1, dtype=np.int64)
    strength = np.zeros(count)
    sizes = rng.integers(2, 7, size=int(count * CLUSTERED_SHARE) // 2)
    sizes = sizes[np.cumsum(sizes) <= int(count * CLUSTERED_SHARE)]
    members = rng.permutation(count)[: int(sizes.sum())]
    group = np.repeat(np.arange(len(sizes)), sizes)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    xy[members] = xy[members[first]][group] + rng.normal(size=(len(members), 2)) * 0.05
    labels[members], strength[members] = group, rng.uniform(0.3, 1.0, size=len(members))
    years = np.where(rng.random(count) < 0.1, np.nan, rng.integers(1400, 1700, size=count))
    height = xy[:, 0] + rng.normal(size=count) * 0.5  # a 1-D similarity: neighbours on the map sit close
    return xy.astype(np.float32), years, height.astype(np.float32), labels, strength


def build(count: int) -> None:
    """`count` artworks, a version, its map, a clustering run and its proposals, in this process's DB."""
    import django

    started = time.perf_counter()
    django.setup()
    import numpy as np
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection

    from annotations.models import Collection
    from clustering.algorithms import Clustering
    from clustering.assignments import save_assignments
    from clustering.maps import load_layout
    from clustering.models import ClusteringRun, Proposal, ProposalMember, ProposalStatus
    from clustering.proposals import KINDS
    from training.models import ModelVersion
    from workbench import paths

    call_command("migrate", verbosity=0)
    xy, years, height, labels, strength = layout_and_clusters(count, seed=count)
    collection = Collection.objects.create(name="Bench")
    splits = ["", "", "train", "val", "test"]
    ids = np.asarray(
        placeholder_artworks(
            collection,
            count,
            date_begin=lambda i: None if years[i] != years[i] else int(years[i]),
            split=lambda i: splits[i % 5],
        ),
        dtype=np.int64,
    )
    version = ModelVersion.objects.create(
        number=0,
        backbone="resnext50_32x4d",
        weights_kind="random",
        weights_description="bench",
        signature_dim=2048,
        is_active=True,
    )
    # The format clustering.maps writes and load_layout reads (checked below).
    layout_path = paths.layout_file(version.number)
    layout_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        layout_path,
        ids=ids,
        similarity=xy,
        time=np.column_stack([years, height]).astype(np.float32),
    )
    clusters = int(labels.max()) + 1
    run = ClusteringRun.objects.create(
        model_version=version,
        algorithm="optics",
        params={"max_eps": 0.13, "min_samples": 2, "xi": 0.05},
        artwork_count=count,
        cluster_count=clusters,
        noise_share=float(np.mean(labels < 0)),
    )
    saved = save_assignments(run.pk, ids.tolist(), Clustering(labels=labels, strength=strength))
    run.assignments_file = paths.relative(saved)
    run.save(update_fields=["assignments_file"])
    reviewed = int(clusters * REVIEWED_SHARE)
    proposals = Proposal.objects.bulk_create(
        [
            Proposal(
                run=run,
                label=label,
                kind=KINDS[label % len(KINDS)],
                size=0,
                confidence=0.5,
                new_links=1,
                new_pairs=1,
                review_value=1.0 / (label + 1),
                rank=label + 1,
                status=ProposalStatus.CONFIRMED if label < reviewed else ProposalStatus.OPEN,
            )
            for label in range(clusters)
        ],
        batch_size=5000,
    )
    members = []
    order = np.argsort(labels, kind="stable")
    order = order[labels[order] >= 0]
    for position, index in enumerate(order):
        label = int(labels[index])
        members.append(
            ProposalMember(
                proposal=proposals[label],
                artwork_id=int(ids[index]),
                strength=float(strength[index]),
                position=position,
            )
        )
    ProposalMember.objects.bulk_create(members, batch_size=10000)
    sizes = np.bincount(labels[labels >= 0], minlength=clusters)
    for proposal in proposals:
        proposal.size = int(sizes[proposal.label])
    Proposal.objects.bulk_update(proposals, ["size"], batch_size=5000)
    User.objects.create_user(USERNAME, password=PASSWORD)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    layout = load_layout(version)
    assert layout is not None and len(layout.ids) == count, "the map page would not read this layout"
    print(
        f"built {count:,} artworks, a map and a run of {clusters:,} clusters "
        f"({reviewed:,} reviewed) in {time.perf_counter() - started:.1f} s",
        flush=True,
    )


# --- serving and measuring ------------------------------------------------------------------------------


def postgres_url(base: str, count: int) -> str:
    """`<name>_map<count>` on the server `base` names, created empty (dropped first if a run left it)."""
    import psycopg

    parsed = urlparse(base)
    name = f"{parsed.path.lstrip('/') or 'workbench'}_map{count}"
    with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return parsed._replace(path=f"/{name}").geturl()


def drop_postgres(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    with psycopg.connect(parsed._replace(path="/postgres").geturl(), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{parsed.path.lstrip("/")}" WITH (FORCE)')


def environment(data_dir: Path, static_root: Path, database_url: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "workbench.settings",
        "WORKBENCH_DATA_DIR": str(data_dir),
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-" + "x" * 40,
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "STATIC_ROOT": str(static_root),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DATABASE_URL", None)  # SQLite in the data folder unless --database-url
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def serve(env: dict[str, str], port: int, workers: int, log: Path) -> subprocess.Popen:
    """gunicorn on `port`; what it and Django write goes to `log` (see `server_complaints`)."""
    with log.open("wb") as handle:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "workbench.wsgi", "--bind", f"127.0.0.1:{port}"]
            + ["--workers", str(workers), "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn on port {port} exited with {server.returncode}:\n{log.read_text()}")
        try:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            probe.request("GET", "/healthz")
            if probe.getresponse().status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise SystemExit(f"gunicorn on port {port} did not answer /healthz within 60 s")


def server_complaints(log: Path) -> list[str]:
    """The server's log lines but the expected 404s: the favicon (the app has none) and the thumbnail of the
    point under the pointer, which the hover preview asks for (the benchmark's artworks have no images)."""
    expected = ("favicon.ico", "/files/thumbs/")
    return [line for line in log.read_text().splitlines() if line and not any(e in line for e in expected)]


def chromium_version() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        print("Installing Debian's chromium (as bin/test does)", flush=True)
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            sudo + ["apt-get", "install", "-y", "-qq", "chromium"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            stdout=subprocess.DEVNULL,
        )
    # Debian's wrapper script may write shell noise to stderr; stdout's first line is the version.
    answer = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=True)
    return answer.stdout.strip().splitlines()[0]


def log_in(context, base_url: str) -> None:
    page = context.new_page()
    page.goto(f"{base_url}/login/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")
    page.close()


def measure(context, base_url: str, count: int, zoom_steps: int) -> dict[str, float]:
    """One fresh page of /map/: load-and-draw figures (ms) and the mean redraw per zoom step (ms)."""
    page = context.new_page()
    page.set_default_timeout(180_000)
    try:
        page.goto(f"{base_url}/map/", wait_until="commit")
        page.wait_for_function("window.__mapBench && window.__mapBench.painted !== null", polling=50)
        load = page.evaluate(LOAD_FIGURES)
        if load["points"] != count or f"{count:,} artworks" not in load["status"]:
            raise SystemExit(f"the map drew {load['points']} points ({load['status']!r}), not {count:,}")
        box = page.locator("#map-canvas").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_timeout(300)  # the hover preview of the point under the pointer settles first
        for k in range(zoom_steps):
            page.mouse.wheel(0, -100 if k < zoom_steps // 2 else 100)  # in, then back out to the start
            page.wait_for_function(
                f"(window.__mapBench.steps[{k}] || {{}}).painted !== undefined", polling=10
            )
        steps = page.evaluate("window.__mapBench.steps")
        if len(steps) != zoom_steps:
            raise SystemExit(f"{zoom_steps} wheel events sent, the page saw {len(steps)}")
    finally:
        page.close()
    return {
        "load": load["painted"],
        "page": load["json_start"],
        "json": load["json_end"] - load["json_start"],
        "server": load["server"] or 0.0,
        "bytes": load["json_bytes"] or 0,
        "draw": load["drawn"] - load["json_end"],
        "frame": load["painted"] - load["drawn"],
        "zoom": sum(s["painted"] - s["start"] for s in steps) / len(steps),
        "handler": sum(s["handled"] - s["start"] for s in steps) / len(steps),
        "slowest": max(s["painted"] - s["start"] for s in steps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--baseline-points", type=int, default=1_000)
    add_runs_argument(parser)
    parser.add_argument("--zoom-steps", type=int, default=20, help="wheel events per page (default 20)")
    parser.add_argument("--database-url", help="PostgreSQL server (and database name prefix); SQLite without")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes per server")
    parser.add_argument("--build", type=int, help=argparse.SUPPRESS)  # the child process that builds one size
    args = parser.parse_args()
    if args.build is not None:
        build(args.build)
        return
    check_runs(args.runs)
    if args.points < 2 or args.baseline_points < 2 or args.zoom_steps < 2:
        raise SystemExit("--points, --baseline-points and --zoom-steps must be at least 2")
    if args.points == args.baseline_points:
        raise SystemExit("--points and --baseline-points must differ")
    print(machine_line())
    print(f"browser: {chromium_version()}, headless, {' '.join(CHROMIUM_ARGS)} (software canvas)", flush=True)

    from playwright.sync_api import sync_playwright

    sizes = (args.baseline_points, args.points)
    scratch = Path(tempfile.mkdtemp(prefix="bench-map-"))
    databases: list[str] = []
    servers: list[subprocess.Popen] = []
    try:
        static_root = scratch / "static"
        envs = []
        for count in sizes:
            url = postgres_url(args.database_url, count) if args.database_url else None
            if url:
                databases.append(url)
            env = environment(scratch / f"data-{count}", static_root, url)
            subprocess.run([sys.executable, __file__, "--build", str(count)], cwd=ROOT, env=env, check=True)
            envs.append(env)
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=ROOT,
            env=envs[0],
            check=True,
        )
        logs = [scratch / f"gunicorn-{port}.log" for port in PORTS]
        servers = [
            serve(env, port, args.workers, log) for env, port, log in zip(envs, PORTS, logs, strict=False)
        ]
        bases = [f"http://127.0.0.1:{port}" for port in PORTS]
        results: dict[int, list[dict[str, float]]] = {count: [] for count in sizes}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            # One context per server: cookies ignore the port, so two servers' sessions need two cookie jars.
            contexts = []
            for base in bases:
                context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
                context.add_init_script(OBSERVER)
                log_in(context, base)
                contexts.append(context)
            for count, context, base in zip(sizes, contexts, bases, strict=True):
                measure(context, base, count, args.zoom_steps)  # warm-up: worker imports, caches, JIT
            for _ in range(args.runs):
                for count, context, base in zip(sizes, contexts, bases, strict=True):
                    results[count].append(measure(context, base, count, args.zoom_steps))
            browser.close()
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
        complaints = [line for log in scratch.glob("gunicorn-*.log") for line in server_complaints(log)]
        if complaints:
            print("the servers logged:\n  " + "\n  ".join(complaints[-20:]))
        for url in databases:
            drop_postgres(url)
        shutil.rmtree(scratch, ignore_errors=True)

    report(results, sizes, args)


def report(results: dict[int, list[dict[str, float]]], sizes: tuple[int, int], args) -> None:
    def samples(count: int, key: str, scale: float = 1.0) -> Samples:
        return Samples.of([r[key] * scale for r in results[count]])

    small, large = sizes
    width = len(f"{large:,} points") + 1

    def row(label: str, text: str) -> None:
        print(f"    {label:<{width}} {text}")

    database = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"/map/ served by gunicorn ({args.workers} workers, {database}), {args.runs} fresh page load(s) per "
        f"size, sizes alternated, {args.zoom_steps} zoom steps per load; scale cost = large / small "
        f"(the large map has {large / small:g}× the points)"
    )
    print("  load and draw (navigation start → the frame after the points are drawn):")
    for count in sizes:
        row(f"{count:,} points", samples(count, "load", 1e-3).show("s", 3))
    row("scale cost", show_ratio(paired_ratio(samples(large, "load"), samples(small, "load"))))
    for count in sizes:
        median = {key: samples(count, key).median for key in results[count][0]}
        print(
            f"    {count:,} points, medians: page and map.js {median['page']:.0f} ms · map JSON "
            f"{median['json']:.0f} ms ({median['bytes'] / 2**20:.1f} MiB, server {median['server']:.0f} ms)"
            f" · parse, project and draw {median['draw']:.0f} ms · frame {median['frame']:.0f} ms"
        )
    print(
        "  redraw per zoom step (wheel event reaches the page → the frame after the redraw, mean per load):"
    )
    for count in sizes:
        row(f"{count:,} points", samples(count, "zoom").show("ms", 1))
    row("scale cost", show_ratio(paired_ratio(samples(large, "zoom"), samples(small, "zoom"))))
    for count in sizes:
        print(
            f"    {count:,} points, medians: the wheel handler (the redraw's script) "
            f"{samples(count, 'handler').median:.1f} ms per step; slowest step "
            f"{samples(count, 'slowest').median:.1f} ms"
        )


if __name__ == "__main__":
    main()
