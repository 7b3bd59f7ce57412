"""Pages and endpoints: login required, job progress JSON, cancel rights, export, file serving."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from annotations.importer import import_collection
from annotations.models import Artwork
from jobs.models import Job, JobState

pytestmark = pytest.mark.django_db


@pytest.fixture
def annotator(client):
    user = User.objects.create_user("anna", password="a-long-password-1")
    client.force_login(user)
    return user


@pytest.mark.parametrize(
    "url", ["/", "/jobs/", "/jobs/active.json", "/connections/export.csv", "/files/images/aa/x.jpg"]
)
def test_login_required(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_dashboard_shows_counts(client, annotator, source, data_dir):
    import_collection(source.images, source.metadata, source.connections, "Dashboard collection")
    page = client.get("/").content.decode()
    assert "Dashboard collection" in page
    assert ">6<" in page.replace(" ", "")
    assert "POSITIVE" in page and "DUPLICATE" in page


def test_job_json_reports_progress(client, annotator):
    job = Job.objects.create(
        kind="worker_check",
        state=JobState.RUNNING,
        progress=0.4,
        message="step 4/10",
        eta_seconds=12.0,
        worker="h:1",
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    data = client.get(reverse("jobs:json", args=[job.pk])).json()
    assert data["state"] == "running"
    assert data["progress"] == 0.4 and data["message"] == "step 4/10" and data["eta_seconds"] == 12.0
    assert client.get(reverse("jobs:json", args=[job.pk + 100])).status_code == 404


def test_only_the_starter_or_staff_can_cancel(client, annotator):
    other = User.objects.create_user("otto", password="a-long-password-2")
    theirs = Job.objects.create(kind="worker_check", created_by=other)
    mine = Job.objects.create(kind="worker_check", created_by=annotator)
    assert client.post(reverse("jobs:cancel", args=[theirs.pk])).status_code == 403
    assert client.post(reverse("jobs:cancel", args=[mine.pk])).status_code == 302
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert theirs.state == JobState.QUEUED and mine.state == JobState.CANCELLED
    assert client.get(reverse("jobs:cancel", args=[mine.pk])).status_code == 405


def test_cancel_needs_csrf_token(annotator):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(annotator)
    job = Job.objects.create(kind="worker_check", created_by=annotator)
    assert strict.post(reverse("jobs:cancel", args=[job.pk])).status_code == 403


def test_export_download_matches_the_command(client, annotator, source, data_dir, tmp_path):
    import_collection(source.images, source.metadata, source.connections, "C")
    response = client.get(reverse("annotations:export_connections"))
    assert response["Content-Disposition"].startswith('attachment; filename="connections-')
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    from django.core.management import call_command

    out = tmp_path / "cmd.csv"
    call_command("export_connections", "--out", str(out))
    assert rows == list(csv.DictReader(open(out)))
    assert len(rows) == 4


def test_files_are_served_and_traversal_is_refused(client, annotator, source, data_dir):
    import_collection(source.images, source.metadata, None, "C")
    artwork = Artwork.objects.get(external_id="art-1")
    response = client.get(artwork.grid_thumbnail_url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content)[:2] == b"\xff\xd8"  # a JPEG
    (data_dir / "secret.txt").write_text("no")
    assert client.get("/files/images/../secret.txt").status_code == 404
    assert client.get("/files/secret.txt").status_code == 404


def test_collection_and_artwork_pages(client, annotator, source, data_dir):
    import_collection(source.images, source.metadata, source.connections, "Pages")
    artwork = Artwork.objects.get(external_id="art-1")
    page = client.get(reverse("annotations:collection", args=[artwork.collection_id]), {"q": "Title 1"})
    assert page.status_code == 200 and artwork.grid_thumbnail_url in page.content.decode()
    detail = client.get(reverse("annotations:artwork", args=[artwork.pk])).content.decode()
    assert "Title 1" in detail and "INV-001" in detail
    assert detail.count('class="tag positive"') == 2  # art-0 and art-2


def test_healthz_needs_no_login(client):
    assert client.get("/healthz").json() == {"ok": True}


def test_dashboard_lists_model_versions(client, annotator):
    from training.models import ModelVersion

    common = {"backbone": "tf_efficientnet_lite0", "signature_dim": 1280}
    v0 = ModelVersion.objects.create(
        number=0,
        weights_kind="random",
        weights_description="no weights",
        metrics={"val": {"map": 0.25}},
        **common,
    )
    v1 = ModelVersion.objects.create(
        number=1,
        parent=v0,
        weights_kind="package",
        weights_description="lite0",
        metrics={"val": {"map": 0.5}, "test": {"map": 0.375, "recall@10": 0.75}},
        **common,
    )
    v1.activate()
    page = client.get("/").content.decode()
    assert "random init" in page and "0.3750" in page and "0.7500" in page and "from v0" in page
