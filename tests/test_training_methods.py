"""The registry of retrieval methods: a version names its method, and a new method is one registry entry.

A test-only method (colour histograms, no training) is registered here; with no view or clustering code
touched, its version gets signatures, search results, neighbours and a clustering run.
"""

from __future__ import annotations

import numpy as np
import pytest
from django.contrib.auth.models import User
from PIL import Image

from clustering.algorithms import ClusteringParams
from clustering.runs import run_clustering
from training import methods, signatures
from training.models import ModelVersion
from training.rounds import extract_for_version
from workbench import paths

from .test_clustering_runs import collection  # noqa: F401 - fixture

BINS = 8


def load_histogram_model(version) -> str:
    return f"histogram model of {version.label}"


def embed_histograms(model, version, files, progress=None, **overrides) -> np.ndarray:
    assert model == f"histogram model of {version.label}"  # the loader's model is handed back
    rows = []
    for file in files:
        pixels = np.asarray(Image.open(file).convert("RGB"))
        counts = [np.histogram(pixels[..., c], bins=BINS, range=(0, 256))[0] for c in range(3)]
        vector = np.concatenate(counts).astype(np.float32)
        rows.append(vector / np.linalg.norm(vector))
    return np.stack(rows)


HISTOGRAMS = methods.Method(
    name="test-colour-histogram",
    label="Colour histogram (test)",
    summary="8 bins per RGB channel; no training",
    train_job="worker_check",
    loader="tests.test_training_methods:load_histogram_model",
    embedder="tests.test_training_methods:embed_histograms",
)


@pytest.fixture
def histogram_version(collection):  # noqa: F811
    methods.register(HISTOGRAMS)
    yield ModelVersion.objects.create(
        number=7,
        method=HISTOGRAMS.name,
        backbone="none",
        weights_kind="none",
        weights_description="colour histograms",
        signature_dim=3 * BINS,
    )
    methods.METHODS.pop(HISTOGRAMS.name)


def test_the_connection_method_is_registered_and_unknown_ones_are_named():
    assert methods.get("connection").train_job == "train_round"
    assert methods.get("connection").feeds_review
    with pytest.raises(KeyError, match="known: .*connection"):
        methods.get("no-such-method")
    with pytest.raises(ValueError, match="registered twice"):
        methods.register(methods.Method("connection", "other", "", "x", "a:b", "a:b"))


@pytest.mark.django_db
def test_versions_made_by_rounds_are_connection_versions(collection):  # noqa: F811
    assert collection.method == "connection" and collection.retrieval_method is methods.CONNECTION
    assert ModelVersion(method="gone", number=9).method_label == "gone"  # a removed method still shows


@pytest.mark.django_db
def test_a_new_method_works_everywhere_from_its_registry_entry(histogram_version, client):
    result = extract_for_version(histogram_version)
    assert result["new"] == 20
    stored = signatures.load(histogram_version)
    assert stored.vectors.shape == (20, 3 * BINS)
    from annotations.models import Artwork

    first = Artwork.objects.get(pk=stored.ids[0])
    expected = embed_histograms(
        "histogram model of v7", histogram_version, [str(paths.absolute(first.image_relpath))]
    )
    assert np.allclose(stored.vectors[0], expected[0], atol=1e-6)

    run = run_clustering(histogram_version, ClusteringParams(algorithm="dbscan", max_eps=0.05))
    assert run.model_version == histogram_version and run.artwork_count == 20

    User.objects.create_user("historian", password="pw")
    client.login(username="historian", password="pw")
    page = client.get(f"/search/?model=7&artwork={first.pk}")
    assert page.status_code == 200
    columns = page.context["columns"]
    assert columns[0]["version"] == histogram_version and len(columns[0]["results"]) == 19
    panel = client.get(f"/artworks/{first.pk}/neighbours?model=7")
    assert panel.status_code == 200 and len(panel.context["results"]) == 12
    rounds = client.get("/rounds/")
    assert "Colour histogram (test)" in rounds.content.decode()
