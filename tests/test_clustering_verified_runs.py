"""A clustering run verifies candidate pairs on the artworks' images: a detail of a painting, far from it in
the (hand-made) signatures, is proposed with it; inlier counts are kept by image content."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from annotations.importer import import_collection
from clustering.algorithms import ClusteringParams
from clustering.graphs import PairCache
from clustering.runs import run_clustering
from training import signatures as signature_files
from training import verification
from training.signature_store import SignatureSet
from workbench import paths

from .conftest import SourceCollection
from .test_clustering_runs import add_version, pk, proposal_with, signatures


def busy_painting(path, seed: int = 5) -> Image.Image:
    """Hundreds of overlapping shapes: corners and blobs enough for SIFT, like a real composition."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (480, 360), (200, 190, 170))
    draw = ImageDraw.Draw(image)
    for _ in range(300):
        x, y = rng.integers(0, 480), rng.integers(0, 360)
        w, h = rng.integers(6, 40, size=2)
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.ellipse((x, y, x + w, y + h), fill=colour)
        else:
            draw.rectangle((x, y, x + w, y + h), fill=colour, outline=(0, 0, 0))
    image.save(path, quality=95)
    return image


@pytest.fixture
def painting_and_detail(data_dir, tmp_path):
    """20 drawn artworks; art-15 a busy painting, art-17 an enlarged detail of it. In the signatures
    both are far from everything, so only verification can bring them together."""
    source = SourceCollection(tmp_path / "source").write(
        count=20, connections=[["art-0", "art-1", "POSITIVE"]]
    )
    painting = busy_painting(source.images / "img" / "15.jpg")
    detail = painting.crop((80, 60, 380, 300)).resize((390, 312))
    detail.save(source.images / "img" / "17.jpg", quality=90)
    import_collection(source.images, source.metadata, source.connections, "Test")
    raw = signatures(1)
    version = add_version(0, raw)
    # Search (whitened) signatures rank the detail among the painting's nearest, as they rank most
    # details: the candidates come from them; the clustering measures the raw ones, which keep them apart.
    search = raw.copy()
    search[17] = search[15] + 0.2 * search[16]
    ids = signature_files.load(version).ids
    signature_files.save(version, SignatureSet(ids, search), raw=SignatureSet(ids, raw))
    return version


@pytest.mark.django_db
def test_a_detail_is_proposed_with_its_painting_and_its_count_is_kept(painting_and_detail, monkeypatch):
    version = painting_and_detail
    unverified = run_clustering(version, ClusteringParams("optics", verify_top=0))
    assert proposal_with([15, 17], unverified) is None and "verification" not in unverified.metrics

    run = run_clustering(version, ClusteringParams())
    proposal = proposal_with([15, 17], run)
    assert proposal is not None and proposal.kind == "new_group"
    assert run.metrics["verification"]["verified"] == 1
    cache = PairCache(paths.verified_pairs_file(verification.MATCHER_KEY))
    from annotations.models import Artwork

    first, second = (Artwork.objects.get(pk=pk(i)).image_sha256 for i in (15, 17))
    assert cache.get(second, first) >= verification.MIN_INLIERS
    assert len(cache.counts) == run.metrics["verification"]["candidates"]

    def no_matching(*args):
        raise AssertionError("a pair verified before was matched again")

    monkeypatch.setattr(verification, "match", no_matching)
    again = run_clustering(version, ClusteringParams())
    assert proposal_with([15, 17], again) is not None
    assert again.metrics["verification"] == run.metrics["verification"]

    monkeypatch.undo()  # a damaged cache is matched again, not a failed run
    paths.verified_pairs_file(verification.MATCHER_KEY).write_bytes(b"PK\x03\x04 truncated")
    repaired = run_clustering(version, ClusteringParams())
    assert proposal_with([15, 17], repaired) is not None
    assert len(PairCache(paths.verified_pairs_file(verification.MATCHER_KEY)).counts) == len(cache.counts)
