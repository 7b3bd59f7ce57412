"""Train/val/test by connected component: deterministic, persistent, merges go held-out."""

from __future__ import annotations

import pytest

from annotations.connections import Statement, apply_statements
from annotations.importer import import_collection
from annotations.models import Artwork
from annotations.splits import assign_splits, connected_components, split_for_key

from .conftest import write_rows

SEED = "test-seed"


def keys_for(*nodes: str) -> dict[str, str]:
    return {node: node for node in nodes}


def test_connected_components():
    components = connected_components([("a", "b"), ("c", "d"), ("b", "e"), ("f", "f")])
    assert sorted(sorted(c) for c in components) == [["a", "b", "e"], ["c", "d"], ["f"]]


def test_new_component_gets_the_split_of_its_smallest_id():
    changes = assign_splits([("b", "c"), ("a", "b")], {}, keys_for("a", "b", "c"), SEED)
    expected = split_for_key("a", SEED)
    assert {(c.node, c.old, c.new) for c in changes} == {(n, None, expected) for n in "abc"}


def test_assignment_does_not_depend_on_edge_order():
    edges = [(f"n{i}", f"n{i + 1}") for i in range(0, 200, 2)]
    keys = {n: n for e in edges for n in e}
    forward = {c.node: c.new for c in assign_splits(edges, {}, keys, SEED)}
    backward = {c.node: c.new for c in assign_splits(list(reversed(edges)), {}, keys, SEED)}
    assert forward == backward


def test_shares_are_about_two_thirds_one_sixth_one_sixth():
    splits = [split_for_key(f"component-{i}", SEED) for i in range(6000)]
    assert splits.count("train") / 6000 == pytest.approx(2 / 3, abs=0.03)
    assert splits.count("val") / 6000 == pytest.approx(1 / 6, abs=0.03)
    assert splits.count("test") / 6000 == pytest.approx(1 / 6, abs=0.03)


def test_new_member_inherits_its_component_split():
    changes = assign_splits([("a", "b"), ("b", "z")], {"a": "val", "b": "val"}, keys_for("a", "b", "z"), SEED)
    assert [(c.node, c.old, c.new) for c in changes] == [("z", None, "val")]


def test_merge_takes_the_most_held_out_split():
    current = {"a": "train", "b": "train", "c": "test", "d": "test", "e": "val"}
    edges = [("a", "b"), ("c", "d"), ("b", "c"), ("d", "e")]
    changes = assign_splits(edges, current, keys_for(*current), SEED)
    assert {(c.node, c.old, c.new) for c in changes} == {
        ("a", "train", "test"),
        ("b", "train", "test"),
        ("e", "val", "test"),
    }


def test_removing_a_link_moves_nothing():
    current = {"a": "test", "b": "test", "c": "test"}
    assert assign_splits([("a", "b")], current, keys_for(*current), SEED) == []


@pytest.mark.django_db
def test_splits_follow_imports_and_later_decisions(source, data_dir, settings):
    settings.SPLIT_SEED = SEED
    import_collection(source.images, source.metadata, source.connections, "C")
    split = {a.external_id: a.split for a in Artwork.objects.all()}
    # art-0, art-1, art-2 are one POSITIVE component; art-3/art-4 a DUPLICATE one; art-5 only NEGATIVE.
    assert split["art-0"] == split["art-1"] == split["art-2"] == split_for_key("art-0", SEED)
    assert split["art-3"] == split["art-4"] == split_for_key("art-3", SEED)
    assert split["art-5"] == ""
    # A new POSITIVE link from the lone artwork: it joins the component and inherits its split.
    art = {a.external_id: a for a in Artwork.objects.all()}
    apply_statements([Statement(art["art-5"].pk, art["art-2"].pk, "POSITIVE")], source="user")
    assert Artwork.objects.get(external_id="art-5").split == split["art-0"]
    # Historians revise the link to NEGATIVE: nothing moves back.
    apply_statements([Statement(art["art-5"].pk, art["art-2"].pk, "NEGATIVE")], source="user")
    assert Artwork.objects.get(external_id="art-5").split == split["art-0"]


@pytest.mark.django_db
def test_merge_through_import_reports_moves(source, data_dir, settings):
    # Pick a seed under which the two components start in different splits.
    for attempt in range(100):
        seed = f"s{attempt}"
        if split_for_key("art-0", seed) == "train" and split_for_key("art-3", seed) == "test":
            break
    settings.SPLIT_SEED = seed
    import_collection(source.images, source.metadata, source.connections, "C")
    write_rows(source.connections, ["img1", "img2", "type"], [["art-2", "art-3", "POSITIVE"]])
    report = import_collection(source.images, source.metadata, source.connections, "C")
    assert report.moved_out_of_train == 3
    assert set(Artwork.objects.exclude(split="").values_list("split", flat=True)) == {"test"}
