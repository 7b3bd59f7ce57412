"""Synthetic validation (`training.synthetic`): which images are chosen, what is generated and cached, and
how its queries are scored. Plain module, no database."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from training import synthetic


def paintings(folder, count: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(0)
    paths, keys = [], []
    for index in range(count):
        pixels = rng.integers(0, 255, size=(48 + index % 5, 64, 3), dtype=np.uint8)
        path = folder / f"p{index}.png"
        Image.fromarray(pixels).resize((200, 150)).save(path)
        paths.append(str(path))
        keys.append(f"{index:064x}")
    return paths, keys


def test_sources_are_chosen_by_content_and_stay_chosen_as_the_collection_grows() -> None:
    candidates = [(row, f"key-{row}") for row in range(500)]
    chosen = synthetic.choose_sources(candidates, count=50)
    assert len(chosen) == 50 and chosen == sorted(chosen)
    # The same images under other row numbers (a reordered gallery) are the same choice.
    shifted = synthetic.choose_sources([(row + 7, key) for row, key in candidates], count=50)
    assert shifted == [row + 7 for row in chosen]
    # New images enter only where their hash ranks first; old ones that stay keep their place.
    grown = synthetic.choose_sources(candidates + [(row, f"new-{row}") for row in range(500, 520)], count=50)
    assert len(set(grown) & set(chosen)) >= 45


@pytest.mark.parametrize("kind", synthetic.KINDS)
def test_every_kind_makes_a_changed_picture(kind: str) -> None:
    rng = np.random.default_rng(1)
    source = Image.fromarray(rng.integers(0, 255, size=(120, 160, 3), dtype=np.uint8))
    host = Image.fromarray(rng.integers(0, 255, size=(140, 100, 3), dtype=np.uint8))
    picture = synthetic.make_image(kind, source, host, random.Random(3))
    assert picture.mode == "RGB" and min(picture.size) >= 16
    same_size = picture.size == source.size
    assert not (same_size and np.array_equal(np.asarray(picture), np.asarray(source)))


def test_build_generates_once_and_records_partners(tmp_path) -> None:
    paths, keys = paintings(tmp_path, 12)
    sources = [0, 1, 2, 3]
    built = synthetic.build(tmp_path / "out", paths, keys, sources, host_rows=range(12), per_source=3)
    assert len(built.queries) == 12 and len({q.name for q in built.queries}) == 12
    for query in built.queries:
        assert query.source in sources and query.partners[0] == query.source
        if query.kind == "motif":
            assert len(query.partners) == 2 and query.partners[1] not in sources
        else:
            assert query.partners == (query.source,)
        assert max(Image.open(built.folder / query.name).size) <= synthetic.MAX_SIDE
    stamps = {p: (built.folder / p).stat().st_mtime_ns for p in built.names}
    again = synthetic.build(tmp_path / "out", paths, keys, sources, host_rows=range(12), per_source=3)
    assert again.queries == built.queries
    assert {p: (built.folder / p).stat().st_mtime_ns for p in again.names} == stamps  # cached, not redone
    with pytest.raises(ValueError, match="per_source"):
        synthetic.build(tmp_path / "out", paths, keys, sources, host_rows=range(12), per_source=0)


def test_scores_count_the_source_and_the_siblings_and_group_by_source(tmp_path) -> None:
    queries = [
        synthetic.SyntheticQuery("a.jpg", "crop", 0, (0,)),
        synthetic.SyntheticQuery("b.jpg", "mirror", 0, (0,)),
        synthetic.SyntheticQuery("c.jpg", "motif", 1, (1, 2)),
    ]
    built = synthetic.SyntheticSet(tmp_path, queries)
    gallery = np.eye(4, dtype=np.float32)  # four unrelated paintings
    # Query a and b sit on painting 0; c halfway between paintings 1 and 2 (a motif of 1 pasted into 2).
    query_vectors = np.array([[1, 0.1, 0, 0], [1, 0, 0.1, 0], [0, 1, 1, 0]], dtype=np.float32)
    metrics = synthetic.evaluate(gallery, query_vectors, built)
    assert metrics.n_queries == 3 and metrics.n_groups == 2
    assert metrics.map == pytest.approx(1.0)  # every query's partners come first
    wrong = synthetic.evaluate(gallery, np.array([[0, 0, 0, 1]] * 3, dtype=np.float32) + 0.01, built)
    assert wrong.map < 0.6
    with pytest.raises(ValueError, match="3 synthetic queries"):
        synthetic.evaluate(gallery, query_vectors[:2], built)
