"""Import from IIIF (issue 15, item 1) against a real HTTP server on 127.0.0.1 that serves manifests and a
small Image API: 2.1 and 3.0 manifests, a collection, a server whose images fail half-way (nothing written,
resumable), a malformed manifest, a server that times out."""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.management import call_command
from PIL import Image

from annotations.iiif_import import download_folder, import_iiif
from annotations.iiif_source import Fetcher, IIIFError, parse
from annotations.importer import ImportFailed
from annotations.models import Artwork

pytestmark = pytest.mark.django_db(transaction=True)


def picture(seed: int, size=(400, 300)) -> bytes:
    image = Image.new("RGB", size, ((seed * 70) % 256, (seed * 30) % 256, 128))
    for x in range(0, size[0], 20 + seed):
        image.paste((250, 250, 250), (x, 0, x + 4, size[1]))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


class IIIFServer:
    """Manifests by path, images by name under /iiif/<name>/..., with failures and delays to order."""

    def __init__(self) -> None:
        self.documents: dict[str, object] = {}
        self.images = {f"img{i}": picture(i) for i in range(6)}
        self.failing: set[str] = set()
        self.slow: set[str] = set()
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the stdlib's name
                server.requests.append(self.path)
                if self.path in server.documents:
                    document = server.documents[self.path]
                    body = document if isinstance(document, bytes) else json.dumps(document).encode()
                    return self.answer(200, body, "application/json")
                parts = self.path.split("/")
                if len(parts) >= 3 and parts[1] in ("iiif", "plain"):
                    name = parts[2].removesuffix(".jpg")
                    if name in server.slow:
                        time.sleep(2)
                    if name in server.failing:
                        return self.answer(500, b"broken", "text/plain")
                    if name in server.images:
                        return self.answer(200, server.images[name], "image/jpeg")
                return self.answer(404, b"not found", "text/plain")

            def answer(self, status, body, content_type):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def manifest3(self, path: str, names: list[str], label="A 3.0 manifest") -> str:
        self.documents[path] = {
            "@context": "http://iiif.io/api/presentation/3/context.json",
            "id": self.base + path,
            "type": "Manifest",
            "label": {"en": [label]},
            "metadata": [{"label": {"en": ["Painter"]}, "value": {"none": ["Workshop of Titian"]}}],
            "navDate": "1540-01-01T00:00:00Z",
            "rights": "http://creativecommons.org/publicdomain/mark/1.0/",
            "requiredStatement": {"label": {"en": ["Attribution"]}, "value": {"en": ["Fondazione Cini"]}},
            "items": [
                {
                    "id": f"{self.base}{path}/canvas/{name}",
                    "type": "Canvas",
                    "label": {"none": [f"canvas {name}"]},
                    "width": 4000,
                    "height": 3000,
                    "items": [
                        {
                            "id": f"{self.base}{path}/page/{name}",
                            "type": "AnnotationPage",
                            "items": [
                                {
                                    "id": f"{self.base}{path}/annotation/{name}",
                                    "type": "Annotation",
                                    "motivation": "painting",
                                    "target": f"{self.base}{path}/canvas/{name}",
                                    "body": {
                                        "id": f"{self.base}/iiif/{name}/full/max/0/default.jpg",
                                        "type": "Image",
                                        "format": "image/jpeg",
                                        "service": [
                                            {"id": f"{self.base}/iiif/{name}", "type": "ImageService3",
                                             "profile": "level1"}
                                        ],
                                    },
                                }
                            ],
                        }
                    ],
                }
                for name in names
            ],
        }  # fmt: skip
        return self.base + path

    def manifest2(self, path: str, name: str) -> str:
        self.documents[path] = {
            "@context": "http://iiif.io/api/presentation/2/context.json",
            "@id": self.base + path,
            "@type": "sc:Manifest",
            "label": "A 2.1 manifest",
            "metadata": [{"label": "Author", "value": "Anonymous"}],
            "navDate": "1500-06-01T00:00:00Z",
            "license": "http://rightsstatements.org/vocab/NoC-US/1.0/",
            "attribution": "The Met",
            "sequences": [
                {
                    "@type": "sc:Sequence",
                    "canvases": [
                        {
                            "@id": f"{self.base}{path}/canvas/1",
                            "@type": "sc:Canvas",
                            "label": "recto",
                            "width": 400,
                            "height": 300,
                            "images": [
                                {
                                    "@type": "oa:Annotation",
                                    "motivation": "sc:painting",
                                    "on": f"{self.base}{path}/canvas/1",
                                    "resource": {
                                        "@id": f"{self.base}/plain/{name}.jpg",
                                        "@type": "dctypes:Image",
                                    },
                                }
                            ],
                        }
                    ],
                }
            ],
        }
        return self.base + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    running = IIIFServer()
    yield running
    running.close()


FAST = {"timeout_s": 5.0, "retries": 1, "backoff_s": 0.0}


def test_a_30_manifest_through_its_image_service(data_dir, server):
    url = server.manifest3("/m3.json", ["img0", "img1", "img2"])
    report = import_iiif(url, "Cini", size=800, fetcher=Fetcher(**FAST))
    assert report.summary and Artwork.objects.count() == 3
    artwork = Artwork.objects.get(
        external_id=f"{url.removesuffix('.json')}/canvas/img1".replace("/m3", "/m3.json")
    )
    assert artwork.title == "canvas img1" and artwork.collection.name == "Cini"
    assert artwork.iiif_url == f"{server.base}/iiif/img1" and artwork.date_text == "1540-01-01"
    assert artwork.extra["iiif_manifest"] == url and artwork.extra["iiif_canvas"] == artwork.external_id
    assert (
        artwork.extra["painter"] == "Workshop of Titian" and artwork.extra["attribution"] == "Fondazione Cini"
    )
    assert artwork.extra["rights"].startswith("http://creativecommons.org/")
    # Asked at the given size, confined (never upscaled), from the service.
    assert "/iiif/img1/full/!800,800/0/default.jpg" in server.requests
    assert not download_folder(url, 800).exists()  # imported: the downloads are gone
    # The same again changes nothing.
    again = import_iiif(url, "Cini", size=800, fetcher=Fetcher(**FAST))
    assert not again.changed_anything and Artwork.objects.count() == 3


def test_a_21_manifest_and_a_collection_of_manifests(data_dir, server):
    second = server.manifest2("/m2.json", "img3")
    first = server.manifest3("/m3.json", ["img0", "img1"])
    server.documents["/collection.json"] = {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": server.base + "/collection.json",
        "type": "Collection",
        "label": {"en": ["Two manifests"]},
        "items": [{"id": first, "type": "Manifest"}, {"id": second, "type": "Manifest"},
                  {"id": server.base + "/collection.json", "type": "Collection"}],  # a cycle, ignored
    }  # fmt: skip
    import_iiif(server.base + "/collection.json", "Both", per_manifest=True, fetcher=Fetcher(**FAST))
    assert Artwork.objects.count() == 2  # one per manifest: its first canvas
    plain = Artwork.objects.get(extra__iiif_manifest=second)
    # A metadata pair named like a catalogue field fills it.
    assert plain.title == "A 2.1 manifest" and plain.date_text == "1500-06-01" and plain.author == "Anonymous"
    assert plain.extra["attribution"] == "The Met" and "author" not in plain.extra
    assert plain.iiif_url == f"{server.base}/plain/img3.jpg" and (plain.width, plain.height) == (400, 300)
    assert "/plain/img3.jpg" in server.requests  # no service: the image the manifest names


def test_images_failing_half_way_write_nothing_and_the_next_try_fetches_only_the_rest(data_dir, server):
    url = server.manifest3("/m3.json", ["img0", "img1", "img2", "img3"])
    server.failing = {"img2"}
    with pytest.raises(ImportFailed) as failed:
        import_iiif(url, "Cini", fetcher=Fetcher(**FAST), concurrency=2)
    report = failed.value.report()
    assert "canvas/img2" in report and "image not fetched" in report and "HTTP 500" in report
    assert Artwork.objects.count() == 0  # all or nothing
    assert len(list((download_folder(url, 1600) / "images").iterdir())) == 3  # kept for the retry
    server.failing = set()
    server.requests.clear()
    import_iiif(url, "Cini", fetcher=Fetcher(**FAST))
    assert Artwork.objects.count() == 4
    assert [r for r in server.requests if r.startswith("/iiif/")] == [
        "/iiif/img2/full/!1600,1600/0/default.jpg"
    ]


def test_a_malformed_manifest_is_a_clear_error(data_dir, server, tmp_path):
    server.documents["/broken.json"] = b"{not json"
    server.documents["/empty.json"] = {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": "x",
        "type": "Manifest",
        "items": [],
    }
    server.documents["/odd.json"] = {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "type": "Range",
    }
    for path, message in [
        ("/broken.json", "not JSON"),
        ("/empty.json", "the manifest has no canvas with an image"),
        ("/odd.json", "no id"),
        ("/missing.json", "HTTP 404"),
    ]:
        with pytest.raises(ImportFailed) as failed:
            import_iiif(server.base + path, "Broken", fetcher=Fetcher(**FAST))
        assert message in failed.value.report(), path
    with pytest.raises(IIIFError, match=r"items\[0\]: a canvas without an id"):
        parse({"type": "Manifest", "id": "m", "items": [{"type": "Canvas"}]})
    local = tmp_path / "m.json"
    local.write_text(json.dumps(server.documents["/empty.json"]))
    with pytest.raises(ImportFailed) as failed:
        import_iiif(str(local), "Local", fetcher=Fetcher(**FAST))  # a file works like a URL
    assert f"{local}: the manifest has no canvas with an image" in failed.value.report()
    assert Artwork.objects.count() == 0


def test_a_server_that_times_out(data_dir, server):
    url = server.manifest3("/m3.json", ["img0", "img4"])
    server.slow = {"img4"}
    started = time.monotonic()
    with pytest.raises(ImportFailed) as failed:
        import_iiif(url, "Slow", fetcher=Fetcher(timeout_s=0.5, retries=1, backoff_s=0.0))
    assert "failed after 2 tries" in failed.value.report()
    assert time.monotonic() - started < 15 and Artwork.objects.count() == 0


def test_from_the_command_line(data_dir, server):
    url = server.manifest3("/m3.json", ["img0", "img5"], label="From the shell")
    out = io.StringIO()
    call_command("import_iiif", "--manifest", url, "--size", "200", stdout=out)
    assert Artwork.objects.filter(collection__name="From the shell").count() == 2
    assert "/iiif/img5/full/!200,200/0/default.jpg" in server.requests


def test_a_curator_imports_from_the_dashboard_on_a_real_worker(
    data_dir, server, client, celery_worker_process
):
    from django.contrib.auth.models import Group, User

    from jobs.models import Job, JobState

    from .conftest import wait_until

    url = server.manifest3("/m3.json", ["img0", "img1"], label="Dashboard import")
    annotator = User.objects.create_user("annotator", password="pw")
    client.force_login(annotator)
    assert client.post("/collections/import-iiif", {"manifest": url}).status_code == 403
    curator = User.objects.create_user("curator", password="pw")
    curator.groups.add(Group.objects.get_or_create(name="curators")[0])
    client.force_login(curator)
    assert "iiif-import-form" in client.get("/").content.decode()
    refused = client.post("/collections/import-iiif", {"manifest": "/etc/passwd"}, follow=True)
    assert "must be an http or https address" in refused.content.decode() and not Job.objects.exists()
    response = client.post("/collections/import-iiif", {"manifest": url, "size": "300"})
    job = Job.objects.get(kind="import_iiif")
    assert response.url == f"/jobs/{job.pk}/" and job.params["size"] == 300 and job.created_by == curator
    wait_until(lambda: Job.objects.get(pk=job.pk).state == JobState.SUCCEEDED, timeout=120, message="import")
    assert Artwork.objects.filter(collection__name="Dashboard import").count() == 2
    assert "/iiif/img1/full/!300,300/0/default.jpg" in server.requests
