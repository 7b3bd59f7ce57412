"""Clustering's files move out of training's signature folders (restructure of 2026-11).

Maps were `signatures/v<N>/layout.npz` and become `maps/v<N>.npz`; cached neighbour graphs were
`signatures/v<N>/graph-<key>.npz` and are dropped (a cache: the next clustering rebuilds them under
`graphs/v<N>/`). Nothing in the database changes; moving back is not needed, so there is no reverse step.
"""

import os

from django.db import migrations


def is_test_database(connection) -> bool:
    """Creating a test database migrates it too, while the data folder is still the real one: leave the
    real folder alone then. By the time it migrates, Django has put the test database's name in the
    connection: the configured TEST NAME (SQLite here), "test_<name>" (PostgreSQL) or an in-memory one."""
    from django.db.backends.base.creation import TEST_DATABASE_PREFIX

    name = str(connection.settings_dict["NAME"])
    configured = (connection.settings_dict.get("TEST") or {}).get("NAME")
    return name == configured or name.startswith(TEST_DATABASE_PREFIX) or "mode=memory" in name


def move_files(apps, schema_editor):
    from workbench import paths

    if schema_editor is not None and is_test_database(schema_editor.connection):
        return
    folder = paths.root() / "signatures"
    if not folder.is_dir():
        return
    for version_folder in folder.glob("v*"):
        digits = version_folder.name[1:]
        if not digits.isdigit():
            continue
        number = int(digits)
        old = paths.legacy_layout_file(number)
        new = paths.layout_file(number)
        if old.exists() and not new.exists():
            new.parent.mkdir(parents=True, exist_ok=True)
            os.replace(old, new)
        for graph in paths.legacy_graph_files(number):
            graph.unlink(missing_ok=True)


class Migration(migrations.Migration):
    dependencies = [
        ("clustering", "0002_manual_runs"),
    ]

    operations = [
        migrations.RunPython(move_files, migrations.RunPython.noop, elidable=True),
    ]
