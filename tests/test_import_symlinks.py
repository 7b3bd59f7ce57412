"""Symbolic links that lead outside the images folder are refused before the file is opened (issue 10.6)."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import pytest

from annotations.importer import ImportFailed, import_collection
from annotations.models import Artwork

from .conftest import SourceCollection, database_state, draw_picture, files_under

pytestmark = pytest.mark.django_db


def refused(source: SourceCollection, data_dir) -> list[str]:
    before_db, before_files = database_state(), files_under(data_dir)
    with pytest.raises(ImportFailed) as failure:
        import_collection(source.images, source.metadata, source.connections, "Test collection")
    assert database_state() == before_db
    assert files_under(data_dir) == before_files
    return [str(problem) for problem in failure.value.problems]


def test_linked_file_outside_the_folder(source: SourceCollection, data_dir, tmp_path: Path):
    outside = tmp_path / "private" / "secret.jpg"
    draw_picture(outside, seed=40)
    (source.images / "img" / "2.jpg").unlink()
    (source.images / "img" / "2.jpg").symlink_to(outside)
    assert refused(source, data_dir) == [
        f"{source.metadata}:4: img/2.jpg: a symbolic link to a file outside the images folder; "
        "copy the file into the folder instead"
    ]


def test_linked_folder_outside_the_folder(source: SourceCollection, data_dir, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    (source.images / "img").rename(elsewhere)
    (source.images / "img").symlink_to(elsewhere, target_is_directory=True)
    problems = refused(source, data_dir)
    assert len(problems) == 6 and all("symbolic link to a file outside" in p for p in problems)


def test_link_to_a_system_file_is_never_opened(source: SourceCollection, data_dir, monkeypatch):
    (source.images / "img" / "1.jpg").unlink()
    (source.images / "img" / "1.jpg").symlink_to("/etc/passwd")
    opened: list[str] = []
    real_open, real_read = builtins.open, Path.read_bytes

    def watching_open(file, *args, **kwargs):
        opened.append(os.path.realpath(file) if isinstance(file, str | Path) else str(file))
        return real_open(file, *args, **kwargs)

    def watching_read(self):
        opened.append(os.path.realpath(self))
        return real_read(self)

    monkeypatch.setattr(builtins, "open", watching_open)
    monkeypatch.setattr(Path, "read_bytes", watching_read)
    problems = refused(source, data_dir)
    assert "/etc/passwd" not in opened
    assert problems == [
        f"{source.metadata}:3: img/1.jpg: a symbolic link to a file outside the images folder; "
        "copy the file into the folder instead"
    ]


def test_links_that_stay_inside_the_folder_are_fine(source: SourceCollection, data_dir):
    (source.images / "img" / "5.jpg").unlink()
    (source.images / "img" / "5.jpg").symlink_to(source.images / "img" / "4.jpg")
    import_collection(source.images, source.metadata, source.connections, "Test collection")
    assert (
        Artwork.objects.get(external_id="art-5").image_sha256
        == Artwork.objects.get(external_id="art-4").image_sha256
    )
