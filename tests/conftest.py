from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
# Hermetic: no test reaches the internet for weights, on a developer's machine either (workers inherit it).
# tests/test_weights_download.py turns it on against a local server.
os.environ["WORKBENCH_DOWNLOAD_WEIGHTS"] = "0"
# Nor do they find a developer's Hugging Face cache (timm's downloaded weights): set before huggingface_hub
# is imported, which reads it once.
os.environ["HF_HUB_CACHE"] = os.path.join(
    os.environ.get("WORKBENCH_DATA_DIR") or "/tmp", f"hf-hub-cache-{os.getpid()}"
)

# Fixtures through which a test reaches the database (and, with a worker, the broker).
DATABASE_FIXTURES = {
    "db",
    "transactional_db",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
    "live_server",
}


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="only the tests that use the database (CI's second pass, on PostgreSQL and Redis: the plain ML "
        "and file-format tests ran in the first pass and touch neither)",
    )


def pytest_collection_modifyitems(config, items) -> None:
    if not config.getoption("--database-tests-only"):
        return
    keep, skip = [], []
    for item in items:
        uses_database = item.get_closest_marker("django_db") is not None or bool(
            DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        )
        (keep if uses_database else skip).append(item)
    config.hook.pytest_deselected(items=skip)
    items[:] = keep


@pytest.fixture
def data_dir(settings, tmp_path: Path) -> Path:
    """A private data directory for the test (images, thumbnails)."""
    folder = tmp_path / "data"
    folder.mkdir()
    settings.DATA_DIR = folder
    return folder


def draw_picture(path: Path, seed: int, size: tuple[int, int] = (120, 90)) -> None:
    """A small distinct picture: coloured bands and a disc whose place depends on the seed."""
    image = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    draw = ImageDraw.Draw(image)
    for band in range(0, size[0], 20):
        draw.rectangle((band, 0, band + 8, size[1]), fill=((seed * 13 + band) % 256, 40, 200))
    x, y = (seed * 17) % (size[0] - 30), (seed * 11) % (size[1] - 30)
    draw.ellipse((x, y, x + 30, y + 30), fill=(250, 250, (seed * 7) % 256))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG" if path.suffix == ".jpg" else "PNG")


def write_rows(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


@dataclass
class SourceCollection:
    """Files for one import: images/, metadata.csv, connections.csv."""

    folder: Path

    @property
    def images(self) -> Path:
        return self.folder / "images"

    @property
    def metadata(self) -> Path:
        return self.folder / "metadata.csv"

    @property
    def connections(self) -> Path:
        return self.folder / "connections.csv"

    METADATA_HEADER = ["id", "path", "title", "author", "date", "style", "genre", "place", "url", "inventory"]

    def metadata_rows(self, count: int) -> list[list[object]]:
        return [
            [
                f"art-{i}",
                f"img/{i}.jpg",
                f"Title {i}",
                f"Painter {i % 3}",
                f"ca. {1500 + i}–{1510 + i}",
                "Baroque",
                "portrait",
                "Venice",
                f"https://example.org/art/{i}",
                f"INV-{i:03d}",
            ]
            for i in range(count)
        ]

    def import_arguments(self, *, connections: bool = True) -> list[str]:
        """`import_collection`'s options for these files."""
        files = ["--images", str(self.images), "--metadata", str(self.metadata)]
        return [*files, "--connections", str(self.connections)] if connections else files

    def job_params(self, collection: str, *, connections: bool = True) -> dict[str, str]:
        """The params of an `import_collection` job for these files."""
        return {
            "images": str(self.images),
            "metadata": str(self.metadata),
            "connections": str(self.connections) if connections else "",
            "collection": collection,
        }

    def write(self, count: int = 6, connections: list[list[object]] | None = None) -> SourceCollection:
        for i in range(count):
            draw_picture(self.images / "img" / f"{i}.jpg", seed=i)
        write_rows(self.metadata, self.METADATA_HEADER, self.metadata_rows(count))
        if connections is None:
            connections = [
                ["art-0", "art-1", "POSITIVE"],
                ["art-1", "art-2", "POSITIVE"],
                ["art-3", "art-4", "DUPLICATE"],
                ["art-0", "art-5", "NEGATIVE"],
            ]
        write_rows(self.connections, ["img1", "img2", "type"], connections)
        return self


@pytest.fixture
def source(tmp_path: Path) -> SourceCollection:
    return SourceCollection(tmp_path / "source").write()


def import_large_collection(folder: Path, count: int, size: tuple[int, int]) -> None:
    """`count` artworks of `size` pixels (art-0…) imported as collection "Large": pictures big enough for an
    image pyramid of several levels, so deep zoom has somewhere to go."""
    from annotations.importer import import_collection

    source = SourceCollection(folder)
    for i in range(count):
        draw_picture(source.images / "img" / f"{i}.jpg", seed=i, size=size)
    write_rows(source.metadata, SourceCollection.METADATA_HEADER, source.metadata_rows(count))
    import_collection(source.images, source.metadata, None, "Large")


def slow_source(folder: Path, count: int = 80) -> SourceCollection:
    """An import that spends seconds checking its images (4-megapixel pictures, ~0.1 s each on one thread
    here), so that a test can interrupt or kill it while it runs; no connections. Its ids (slow-N) are
    its own: beside another collection's art-N, the import would fail on its own whenever the test's
    interruption came late."""
    source = SourceCollection(folder)
    for i in range(count):
        draw_picture(source.images / "img" / f"{i}.jpg", seed=i, size=(2400, 1800))
    rows = source.metadata_rows(count)
    for i, row in enumerate(rows):
        row[0] = f"slow-{i}"
    write_rows(source.metadata, SourceCollection.METADATA_HEADER, rows)
    return source


# The apps whose rows are the user's data. Not `jobs`: a job's own row records that it ran, even when the
# job changed nothing.
DATA_APPS = ("annotations", "training", "clustering")


def database_state() -> dict[str, list[tuple]]:
    """Every row of the project's data tables, to compare before and after an operation."""
    state = {}
    for label in DATA_APPS:
        for model in apps.get_app_config(label).get_models():
            state[model._meta.db_table] = sorted(model.objects.values_list(), key=repr)
    return state


def files_under(folder: Path) -> dict[str, bytes]:
    """Every data file's content; not the imports' empty lock file, which the first import creates."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".import.lock"
    }


# --- a real Celery worker process ---------------------------------------------------------------


def session_database_url() -> str:
    """The URL of the database this test session uses, for a worker process to connect to."""
    conf = connection.settings_dict
    if conf["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{conf['NAME']}"
    user = conf.get("USER") or ""
    password = f":{conf['PASSWORD']}" if conf.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{conf['PORT']}" if conf.get("PORT") else ""
    return f"postgres://{auth}{conf.get('HOST') or ''}{port}/{conf['NAME']}"


def manage_py(*args: str, **options) -> subprocess.Popen:
    """`python manage.py ARGS` as another process against this test's database and data folder, as a
    second terminal or worker would run it; output in `.stdout` (stderr merged) as text."""
    env = {
        **os.environ,
        "DATABASE_URL": session_database_url(),
        "WORKBENCH_DATA_DIR": str(settings.DATA_DIR),
        **options.pop("env_extra", {}),
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=options.pop("stderr", subprocess.STDOUT),
        text=True,
        preexec_fn=terminal_sigint,
        **options,
    )


def terminal_sigint() -> None:
    """Ctrl-C as on a terminal. A suite started in the background (`bin/test &`, nohup) inherits SIGINT
    ignored, exec keeps that, and Python then installs no KeyboardInterrupt handler: the interrupted
    import's test sent SIGINT to a process that ignored it and saw the import finish."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class WorkerProcess:
    def __init__(self, log_path: Path) -> None:
        env = dict(os.environ)
        env["DATABASE_URL"] = session_database_url()
        env["WORKBENCH_DATA_DIR"] = str(settings.DATA_DIR)
        # The broker folder is fixed when settings load; a test may have moved DATA_DIR since.
        env["WORKBENCH_BROKER_DIR"] = str(settings.BROKER_DIR)
        env["WORKBENCH_JOB_HEARTBEAT_INTERVAL"] = "1"
        # One image thread: an import then spends seconds in each phase, whatever the machine's core count,
        # so that a test can catch it there (progress reaches the database every 0.5 s).
        env["WORKBENCH_IMPORT_THREADS"] = "1"
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workbench",
                "worker",
                "--loglevel=INFO",
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
                "-n",
                f"test-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited at start:\n{log_path.read_text()}")
            if " ready." in log_path.read_text():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"worker did not become ready:\n{log_path.read_text()}")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children), as an OOM killer would."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path: Path) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(tmp_path / "worker.log")
    yield worker
    worker.stop()


def start_job_thread(job):
    """Run a job in a thread, as the web process never does but a test must to cancel it midway;
    the thread closes its own database connection so that PostgreSQL can drop the test database."""
    import threading

    from django.db import connections

    from jobs.runner import execute

    def run() -> None:
        try:
            execute(job)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_until(predicate, timeout: float = 60, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def rig_signatures(version, quality: str) -> None:
    """Replace `version`'s stored signatures, of the artworks and of the synthetic validation images, to
    decide what the promotion gate sees: "random" finds nothing; "perfect" ranks every artwork's known
    partners (its component) first and every synthetic image's source first, so no model can beat it."""
    import numpy as np

    from training import signature_store, signatures
    from training.rounds import build_gallery, synthetic_validation
    from training.signature_store import SignatureSet
    from workbench import paths

    gallery = build_gallery()
    synthetic_set = synthetic_validation(gallery)
    names = synthetic_set.names if synthetic_set else []
    rows = len(gallery.artworks)
    if quality == "random":
        rng = np.random.default_rng(version.number)
        vectors = rng.normal(size=(rows + len(names), 64)).astype(np.float32)
    elif quality == "perfect":
        # One direction per component, and one of its own for each artwork without one.
        component = gallery.data.component_of
        direction = np.where(component >= 0, component, component.max() + 1 + np.arange(rows))
        vectors = np.eye(int(direction.max()) + 1, dtype=np.float32)[direction]
        sources = [query.source for query in synthetic_set.queries] if synthetic_set else []
        vectors = np.concatenate([vectors, vectors[sources]])
    else:
        raise ValueError(quality)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    signatures.save(version, SignatureSet([a.pk for a in gallery.artworks], vectors[:rows]))
    if names:
        signature_store.save(
            paths.synthetic_signatures_folder(version.number), SignatureSet(names, vectors[rows:])
        )
