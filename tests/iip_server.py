"""A real IIIF image server for the tests: Debian's IIPImage (iipsrv) spawned by lighttpd with the same
configuration file docker compose uses (docker/iipsrv/lighttpd.conf), on a free port of 127.0.0.1.

It serves Image API 2.1 from a pyramids folder under /iiif/ and plain files (the manifests a test builds)
from a document root. The tests need it installed: bin/test and .ci/run install Debian's iipimage-server
and lighttpd, so a missing server fails the test instead of skipping it.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "docker" / "iipsrv" / "lighttpd.conf"
IIPSRV = Path("/usr/lib/iipimage-server/iipsrv.fcgi")
LIGHTTPD = "/usr/sbin/lighttpd"


PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> None:
    """Become the parent of descendants whose parent exits (Linux prctl), so that `close` can reap the
    iipsrv that lighttpd spawned: orphaned to a PID 1 that never waits (a container's), it would stay a
    zombie for the rest of the run."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def children_of(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ImageServer:
    def __init__(self, folder: Path, pyramids: Path | None = None) -> None:
        missing = [str(p) for p in (IIPSRV, Path(LIGHTTPD)) if not p.exists()]
        if missing:
            raise RuntimeError(
                f"the IIIF image server is not installed ({', '.join(missing)}): "
                "apt-get install iipimage-server lighttpd (bin/test does)"
            )
        self.pyramids = pyramids or folder / "pyramids"  # the workbench's own folder, or one of the test's
        self.documents = folder / "documents"
        self.logs = folder / "logs"
        for path in (self.pyramids, self.documents, self.logs):
            path.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        environment = {
            **os.environ,
            "IIIF_HOST": "127.0.0.1",
            "IIIF_PORT": str(self.port),
            "IIIF_PYRAMIDS": str(self.pyramids),
            "IIIF_DOCUMENT_ROOT": str(self.documents),
            "IIIF_LOG_DIR": str(self.logs),
        }
        adopt_orphans()
        self.process = subprocess.Popen([LIGHTTPD, "-D", "-f", str(CONFIG)], env=environment)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"lighttpd did not start: {self.error_log()}") from None
                time.sleep(0.1)

    def manifest3(self, name: str, images: list[str], label: str) -> str:
        """A 3.0 manifest of pyramids this server holds, written into its documents with IIIF's own library
        (iiif-prezi3), each canvas made from the server's info.json; returns its URL. Canvas ids are
        `<manifest URL>/canvas/<image>`, labels "canvas <image>"."""
        import iiif_prezi3

        url = f"{self.base}/{name}"
        manifest = iiif_prezi3.Manifest(id=url, label={"en": [label]})
        for image in images:
            canvas_id = f"{url}/canvas/{image}"
            manifest.make_canvas_from_iiif(
                url=self.iiif + image,
                id=canvas_id,
                label={"en": [f"canvas {image}"]},
                anno_id=f"{canvas_id}/painting",
                anno_page_id=f"{canvas_id}/page",
            )
        manifest.metadata = [iiif_prezi3.KeyValueString(label={"en": ["Author"]}, value={"en": ["Titian"]})]
        manifest.navDate = "1540-01-01T00:00:00Z"
        manifest.rights = "http://creativecommons.org/publicdomain/mark/1.0/"
        manifest.requiredStatement = iiif_prezi3.KeyValueString(
            label={"en": ["Attribution"]}, value={"en": ["Fondazione Giorgio Cini"]}
        )
        (self.documents / name).write_text(manifest.json(indent=2))
        return url

    @property
    def iiif(self) -> str:
        """The Image API prefix (what WORKBENCH_IIIF_IMAGE_SERVER names)."""
        return f"{self.base}/iiif/"

    def error_log(self) -> str:
        path = self.logs / "lighttpd-error.log"
        return path.read_text()[-2000:] if path.exists() else "(no error log)"

    def requested(self, expected: str = "", after: int = 0, timeout: float = 5.0) -> list[str]:
        """The paths requested after the first `after`, in order, from lighttpd's access log, which lighttpd
        writes out about once a second: with `expected`, wait until that path is among them."""
        path = self.logs / "access.log"
        deadline = time.monotonic() + timeout
        while True:
            found = re.findall(r'"GET (\S+) HTTP', path.read_text())[after:] if path.exists() else []
            if not expected or expected in found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def close(self) -> None:
        spawned = children_of(self.process.pid)  # iipsrv
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in spawned:  # ours now (`adopt_orphans`): stop it if lighttpd did not, and reap it
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
