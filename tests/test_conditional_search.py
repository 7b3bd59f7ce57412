"""Conditional search against the database: a backward-search version trained from the command line with its
student as a follow-up job, searched from the command line, the page and the JSON endpoint, and every refusal
(unknown label or class, a model without heads, a query without a signature, bad λ) a clear message."""

from __future__ import annotations

import shutil

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from annotations.importer import import_collection
from annotations.models import Artwork
from jobs.models import Job, JobState
from jobs.runner import execute
from training import signature_store
from training.conditional_search import load, readable_latents
from training.models import ModelVersion
from training.rounds import extract_for_version
from workbench import paths

from .test_training_label_rounds import TINY, labelled_source


@pytest.fixture
def trained(data_dir, tmp_path):
    source = labelled_source(tmp_path / "labelled")
    import_collection(source / "images", source / "metadata.csv", None, "Labelled")
    round_zero = extract_for_version(None)["version"]
    call_command("train_model", "--method", "backward-search", "--inline", *TINY)
    return ModelVersion.objects.get(method="backward-search"), ModelVersion.objects.get(number=round_zero)


@pytest.mark.django_db(transaction=True)
def test_a_backward_search_model_and_its_student_answer_conditional_queries(trained, capsys, tmp_path):
    version, connection = trained
    assert version.signature_dim == 256 and version.config["labels"] == ["style", "genre"]
    assert version.config["batch_size"] == 8 and version.config["head_lr"] == 0.01
    latent = signature_store.load(paths.latent_folder(version.number))
    assert latent is not None and latent.vectors.shape == (45, 256)
    # The student was trained after the teacher, as a follow-up job, and registered with it.
    assert Job.objects.get(kind="train_student").state == JobState.SUCCEEDED
    assert paths.student_file(version.number).exists()
    assert version.metrics["student"]["pairs"] > 0 and version.metrics["student"]["val_mse"] >= 0

    assert version.metrics["labels"]["style"]["n_queries"] == 6  # measured like every version
    capsys.readouterr()
    call_command("evaluate_model", "--model", str(version.number))
    assert "Backward Search (conditional)" in capsys.readouterr().out

    query = Artwork.objects.filter(style="Baroque").order_by("pk").first()
    call_command(
        "conditional_search", "--model", str(version.number), "--query", str(query.pk),
        "--condition", "style=Gothic", "--top", "5", "--plain",
    )  # fmt: skip
    printed = capsys.readouterr().out.splitlines()
    assert "but style=Gothic" in printed[0] and "optimisation, λ 1.1" in printed[0]
    ranked = [line.split() for line in printed[2:7]]
    assert [int(row[0]) for row in ranked] == [1, 2, 3, 4, 5]
    assert query.pk not in [int(row[1]) for row in ranked]  # the query is never its own hit
    assert "unconditional nearest:" in printed
    call_command(
        "conditional_search", "--model", f"v{version.number}", "--query", str(query.pk),
        "--condition", "style=gothic", "--condition", "genre=landscape", "--student",
    )  # fmt: skip
    assert "student" in capsys.readouterr().out

    for arguments, message in [
        (
            ["--condition", "style=Cubism"],
            "knows no style 'Cubism'; its style classes: Baroque, Gothic, Rococo",
        ),
        (["--condition", "school=Venice"], "has no label 'school'; its labels: style, genre"),
        (["--condition", "style"], "LABEL=CLASS"),
        (["--condition", "style=Gothic", "--lambda", "-1"], "λ must be between 0 and 1000"),
        (["--condition", "style=Gothic", "--lambda", "x"], "λ must be a number"),
        (["--condition", "style=Gothic", "--student", "--lambda", "2"], "the student learned the default λ"),
    ]:
        with pytest.raises(CommandError, match=message):
            call_command(
                "conditional_search", "--model", str(version.number), "--query", str(query.pk), *arguments
            )
    with pytest.raises(CommandError, match="connection model without attribute heads"):
        call_command("conditional_search", "--model", str(connection.number), "--query", str(query.pk),
                     "--condition", "style=Gothic")  # fmt: skip
    with pytest.raises(CommandError, match="no artwork with id 999999"):
        call_command("conditional_search", "--model", str(version.number), "--query", "999999",
                     "--condition", "style=Gothic")  # fmt: skip

    # Artworks imported later have no signature until extracted; then their z is computed when first needed.
    more = labelled_source(tmp_path / "more", count=3, start=200)
    import_collection(more / "images", more / "metadata.csv", None, "Later")
    late = Artwork.objects.get(external_id="lab-200")
    with pytest.raises(CommandError, match=f"artwork {late.pk} has no signature under {version.label}"):
        call_command("conditional_search", "--model", str(version.number), "--query", str(late.pk),
                     "--condition", "style=Gothic")  # fmt: skip
    extract_for_version(version)
    call_command("conditional_search", "--model", str(version.number), "--query", str(late.pk),
                 "--condition", "style=Gothic")  # fmt: skip
    stored = signature_store.load(paths.latent_folder(version.number)).ids
    assert late.pk in stored and 46 <= len(stored) <= 48  # the query's, and those of new hits

    # An image that cannot be read when its z is needed, a student that is gone: clear refusals.
    other = Artwork.objects.get(external_id="lab-201")
    shutil.rmtree(paths.latent_folder(version.number))
    paths.absolute(other.image_relpath).write_bytes(b"not an image")
    with pytest.raises(CommandError, match="image cannot be read"):
        call_command("conditional_search", "--model", str(version.number), "--query", str(other.pk),
                     "--condition", "style=Gothic")  # fmt: skip
    # As a hit, though, it is listed without predicted classes: one damaged image fails no other search.
    readable, vectors = readable_latents(load(version), [query.pk, other.pk])
    assert readable == [query.pk] and vectors.shape == (1, 256)
    paths.student_file(version.number).unlink()
    with pytest.raises(CommandError, match="no distilled student yet.*train_student --model"):
        call_command("conditional_search", "--model", str(version.number), "--query", str(query.pk),
                     "--condition", "style=Gothic", "--student")  # fmt: skip
    call_command("train_student", "--model", str(version.number), "--epochs", "2", "--inline")
    call_command("conditional_search", "--model", str(version.number), "--query", str(query.pk),
                 "--condition", "style=Gothic", "--student")  # fmt: skip
    with pytest.raises(CommandError, match="only backward-search ones have a student"):
        call_command("train_student", "--model", str(connection.number), "--inline")


@pytest.mark.django_db(transaction=True)
def test_the_conditional_page_and_its_json(trained, client):
    version, connection = trained
    client.force_login(User.objects.create_user("historian", password="pw"))
    query = Artwork.objects.filter(style="Rococo").order_by("pk").first()
    # The form is on the artwork page's neighbours panel and on the search page.
    panel = client.get(f"/artworks/{query.pk}/neighbours").content.decode()
    assert "Like this one, but" in panel and 'value="style=Gothic"' in panel
    assert "Like this one, but" in client.get(f"/search/?artwork={query.pk}").content.decode()

    page = client.get(f"/conditional/?artwork={query.pk}&condition=style=Gothic&condition=&lambda=2")
    assert page.status_code == 200
    result = page.context["result"]
    assert result["lambda"] == 2 and result["conditions"] == {"style": "Gothic"}
    assert len(result["hits"]) == 24 and len(result["plain_hits"]) == 24  # the search page's count
    body = page.content.decode()
    assert "Nearest, unconditioned" in body and "kept " in body
    hit = result["hits"][0]
    assert set(hit["predicted"]) == {"style", "genre"} and -1 <= hit["similarity_to_query"] <= 1

    answer = client.get(
        f"/conditional.json?model={version.number}&artwork={query.pk}&condition=style=Gothic&mode=student&top=7"
    ).json()
    assert answer["mode"] == "student" and len(answer["hits"]) == 7 and answer["lambda"] is None
    assert {"artwork_id", "score", "similarity_to_query", "predicted", "title"} <= set(answer["hits"][0])
    assert all(h["artwork_id"] != query.pk for h in answer["hits"])

    for query_string, message in [
        (f"artwork={query.pk}&condition=style=Cubism", "knows no style"),
        (f"artwork={query.pk}&condition=style=Gothic&model={connection.number}", "without attribute heads"),
        (f"artwork={query.pk}&condition=style=Gothic&model=v999", "v999"),
        (f"artwork={query.pk}&condition=style=Gothic&lambda=abc", "λ must be a number"),
        (f"artwork={query.pk}&condition=style=Gothic&mode=magic", "mode must be"),
        (
            f"artwork={query.pk}&condition=style=Gothic&mode=student&lambda=2",
            "the student learned the default λ",
        ),
        (f"artwork={query.pk}", "at least one condition"),
        ("artwork=abc&condition=style=Gothic", "artwork"),
        ("condition=style=Gothic", "name the query artwork"),
    ]:
        response = client.get(f"/conditional.json?{query_string}")
        assert response.status_code == 400 and message in response.json()["error"], (
            query_string,
            response.json(),
        )
    bad_page = client.get(f"/conditional/?artwork={query.pk}&condition=style=Cubism")
    assert bad_page.status_code == 400 and "knows no style" in bad_page.content.decode()
    assert "Like this one, but" in bad_page.content.decode()  # the form stays, to correct the request


@pytest.mark.django_db(transaction=True)
def test_a_student_is_refused_for_a_model_without_heads(data_dir, tmp_path):
    source = labelled_source(tmp_path / "labelled", count=12)
    import_collection(source / "images", source / "metadata.csv", None, "Labelled")
    connection = ModelVersion.objects.get(number=extract_for_version(None)["version"])
    job = execute(Job.objects.create(kind="train_student", params={"model": str(connection.number)}))
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "without attribute heads" in job.error
