"""One module names every file under the data folder; clustering's files left training's folders."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from workbench import paths


def test_each_app_writes_its_own_folder(data_dir):
    assert paths.signatures_folder(3) == data_dir / "signatures" / "v3"
    assert paths.layout_file(3).parent == data_dir / "maps"
    assert paths.neighbour_graph_file(3, "abc").parent == data_dir / "graphs" / "v3"
    assert paths.signatures_folder(3) not in paths.layout_file(3).parents
    assert paths.relative(paths.model_file(2)) == "models/v2.pt"
    assert paths.absolute("models/v2.pt") == paths.model_file(2)


@pytest.mark.django_db
def test_the_migration_moves_maps_and_drops_old_graph_caches(data_dir):
    old_layout = paths.legacy_layout_file(4)
    old_layout.parent.mkdir(parents=True)
    np.savez(old_layout, ids=np.arange(3))
    (old_layout.parent / "graph-0123456789abcdef.npz").write_bytes(b"cache")
    (old_layout.parent / "vectors.npy").write_bytes(b"kept")
    migration = importlib.import_module("clustering.migrations.0003_move_data_files")
    migration.move_files(None, None)
    assert not old_layout.exists() and not paths.legacy_graph_files(4)
    with np.load(paths.layout_file(4)) as moved:
        assert moved["ids"].tolist() == [0, 1, 2]
    assert (old_layout.parent / "vectors.npy").read_bytes() == b"kept"  # training's files stay
    migration.move_files(None, None)  # running it again changes nothing
    assert paths.layout_file(4).exists()


@pytest.mark.django_db
def test_the_migration_leaves_the_data_folder_alone_while_a_test_database_is_made(data_dir):
    from types import SimpleNamespace

    from django.db import connection

    old_layout = paths.legacy_layout_file(5)
    old_layout.parent.mkdir(parents=True)
    np.savez(old_layout, ids=np.arange(2))
    migration = importlib.import_module("clustering.migrations.0003_move_data_files")
    migration.move_files(None, SimpleNamespace(connection=connection))  # pytest's database is a test one
    assert old_layout.exists() and not paths.layout_file(5).exists()
