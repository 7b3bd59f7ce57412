"""Label-supervised versions against the database: the persisted label split, the refusal of unusable
labels, a style classifier trained from the command line and then used everywhere a version is (search,
neighbours, clustering, map, evaluation, the rounds page) beside a connection version of another
dimension, and a multitask model trained by a real worker."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from PIL import Image

from annotations.importer import import_collection
from annotations.label_splits import assign_label_splits
from annotations.models import Artwork
from clustering.algorithms import ClusteringParams
from clustering.maps import load_layout
from clustering.runs import run_clustering
from jobs.models import Job, JobState
from jobs.runner import enqueue
from training import signatures
from training.models import ModelVersion, NotReviewModel
from training.rounds import extract_for_version
from workbench.roles import CURATORS

from .conftest import wait_until, write_rows

STYLES = ("Baroque", "Rococo", "Gothic")
TINY = [
    "--input-size", "48", "--epochs", "2", "--stage1-epochs", "2", "--batch-size", "8",
    "--trainable-stages", "1", "--augment", "none",
]  # fmt: skip


def labelled_source(folder: Path, count: int = 45, styles=STYLES, start: int = 0) -> Path:
    """Pictures whose dominant colour is their style and whose stripes are their genre."""
    rng = np.random.default_rng(start)
    rows = []
    for i in range(start, start + count):
        style, genre = i % len(styles), (i // 3) % 2
        pixels = rng.integers(0, 60, (56, 56, 3))
        pixels[..., style % 3] += 150
        if genre:
            pixels[::7] = 240
        path = folder / "images" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path)
        rows.append(
            [f"lab-{i}", f"{i}.png", styles[style], "landscape" if genre else "portrait", f"Hand {i % 5}"]
        )
    write_rows(folder / "metadata.csv", ["id", "path", "style", "genre", "author"], rows)
    return folder


@pytest.fixture
def labelled(data_dir, tmp_path):
    source = labelled_source(tmp_path / "labelled")
    import_collection(source / "images", source / "metadata.csv", None, "Labelled")
    return source


@pytest.mark.django_db
def test_the_label_split_is_stratified_persisted_and_extended(labelled, tmp_path):
    assert assign_label_splits() == 45
    splits = dict(Artwork.objects.values_list("external_id", "label_split"))
    per_style = {s: Counter(a.label_split for a in Artwork.objects.filter(style=s)) for s in STYLES}
    assert all(counts == {"train": 11, "val": 2, "test": 2} for counts in per_style.values()), per_style
    assert assign_label_splits() == 0  # nothing new, nothing moves
    more = labelled_source(tmp_path / "more", count=9, start=100)
    import_collection(more / "images", more / "metadata.csv", None, "Later")
    assert assign_label_splits() == 9
    after = dict(Artwork.objects.values_list("external_id", "label_split"))
    assert all(after[key] == value for key, value in splits.items())
    assert Counter(after[f"lab-{i}"] for i in range(100, 109)) == {"train": 3, "val": 3, "test": 3}


@pytest.mark.django_db(transaction=True)
def test_unusable_labels_are_refused_naming_the_rare_classes(data_dir, tmp_path):
    source = labelled_source(tmp_path / "one", count=14, styles=("Baroque",) * 6 + ("Gothic",))
    import_collection(source / "images", source / "metadata.csv", None, "One style")
    with pytest.raises(CommandError, match=r"cannot train on 'style'.*Gothic \(2\)"):
        call_command("train_model", "--method", "style-classifier", "--inline", *TINY)
    with pytest.raises(CommandError, match="cannot train on 'place'.*no artwork has a 'place' label"):
        call_command("train_model", "--method", "multitask-knn", "--labels", "place", "--inline", *TINY)
    assert not ModelVersion.objects.exists()
    assert Job.objects.filter(state=JobState.FAILED).count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_style_classifier_from_the_command_line_works_everywhere(labelled, client, capsys):
    round_zero = extract_for_version(None)["version"]  # a connection version, 1280-d
    call_command("train_model", "--method", "style-classifier", "--inline", *TINY)
    version = ModelVersion.objects.get(method="style-classifier")
    assert version.number == round_zero + 1 and version.signature_dim == 256
    assert not version.is_active and ModelVersion.objects.get(is_active=True).number == round_zero
    assert version.config["label_tasks"]["style"]["classes"] == sorted(STYLES)
    assert len(version.config["history"]) == 4
    stored = signatures.load(version)
    assert stored.vectors.shape == (45, 256)
    # Both kinds of metrics, on every version.
    assert version.metrics["labels"]["style"]["n_queries"] == 6
    assert 0 <= version.metrics["label_accuracy"]["style"] <= 1
    assert "test" in version.metrics
    assert set(ModelVersion.objects.get(number=round_zero).metrics["labels"]) >= {"style", "genre"}
    assert load_layout(version) is not None  # its map was computed after training

    with pytest.raises(NotReviewModel, match="does not feed the review loop"):
        version.activate()
    with pytest.raises(CommandError, match="does not feed the review loop"):
        call_command("promote_model", "--model", str(version.number))

    capsys.readouterr()
    call_command("evaluate_model", "--model", str(version.number))
    printed = capsys.readouterr().out
    assert "Style classifier" in printed and "labels (leave-one-out" in printed
    assert any(line.startswith("style") and " 6 " in line for line in printed.splitlines())

    # Same labels, same method: skipped unless forced.
    call_command("train_model", "--method", "style-classifier", "--inline", *TINY)
    assert ModelVersion.objects.filter(method="style-classifier").count() == 1

    run = run_clustering(version, ClusteringParams(algorithm="dbscan", max_eps=0.05, verify_top=0))
    assert run.model_version == version and run.artwork_count == 45

    user = User.objects.create_user("historian", password="pw")
    client.force_login(user)
    artwork = Artwork.objects.order_by("pk").first()
    page = client.get(f"/search/?model={version.number}&compare={round_zero}&artwork={artwork.pk}")
    assert page.status_code == 200
    dims = [len(column["results"]) for column in page.context["columns"]]
    assert dims == [24, 24]  # both versions answer, whatever their dimension
    panel = client.get(f"/artworks/{artwork.pk}/neighbours?model={version.number}")
    assert panel.status_code == 200 and len(panel.context["results"]) == 12
    rounds = client.get("/rounds/").content.decode()
    assert "Style classifier (256-d)" in rounds and "label P@1 / 5 / 10" in rounds
    map_points = client.get(f"/map/{version.number}.json")
    assert map_points.status_code == 200, map_points.content[:200]


@pytest.mark.django_db
def test_the_label_model_form_is_for_curators(labelled, client):
    annotator = User.objects.create_user("annotator", password="pw")
    client.force_login(annotator)
    form = {"method": "multitask-knn", "labels": "style genre", "epochs": "3"}
    assert client.post("/rounds/label-model", form).status_code == 403
    curator = User.objects.create_user("curator", password="pw")
    curator.groups.add(Group.objects.get_or_create(name=CURATORS)[0])
    client.force_login(curator)
    response = client.post("/rounds/label-model", form)
    job = Job.objects.get(kind="train_model")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert job.params["method"] == "multitask-knn" and job.params["labels"] == ["style", "genre"]
    assert job.params["epochs"] == 3 and job.params["then"][0]["kind"] == "compute_layout"
    assert job.created_by == curator
    two_labels = client.post("/rounds/label-model", {"method": "style-classifier", "labels": "style genre"})
    assert two_labels.status_code == 302 and Job.objects.count() == 1
    assert client.post("/rounds/label-model", {"method": "nonsense"}).status_code == 400


@pytest.mark.django_db(transaction=True)
def test_a_multitask_model_trains_on_a_real_worker(labelled, celery_worker_process):
    params = {
        "method": "multitask-knn", "input_size": 48, "epochs": 2, "batch_size": 8,
        "trainable_stages": 1, "augment": "none",
    }  # fmt: skip
    # augment none with the default loader workers: the frozen stages are computed by a DataLoader, which
    # must not start worker processes inside a Celery prefork child (daemonic).
    job = enqueue("train_model", params)
    wait_until(lambda: not Job.objects.get(pk=job.pk).is_active, timeout=240, message="training to finish")
    job = Job.objects.get(pk=job.pk)
    assert job.state == JobState.SUCCEEDED, job.error + celery_worker_process.log_path.read_text()[-2000:]
    version = ModelVersion.objects.get(number=job.result["version"])
    assert version.method == "multitask-knn" and version.config["labels"] == ["style", "genre"]
    assert version.signature_dim == 1280 and set(version.metrics["labels"]) >= {"style", "genre"}
    assert job.worker and signatures.load(version).vectors.shape == (45, 1280)
