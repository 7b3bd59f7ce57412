"""Connections and review decisions as W3C Web Annotations (issue 15, item 4): exported beside the CSV, from
the command line and the dashboard, and re-imported all or nothing through the one write path."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from annotations.annotation_exchange import export_document, import_document
from annotations.importer import ImportFailed, import_collection
from annotations.models import Artwork, Connection, ConnectionDecision
from annotations.web_annotations import ANNO_CONTEXT, IDENTIFIER, read

pytestmark = pytest.mark.django_db

BASE = "http://workbench.example"


@pytest.fixture
def imported(data_dir, source):
    import_collection(source.images, source.metadata, source.connections, "Source")
    return {artwork.external_id: artwork for artwork in Artwork.objects.all()}


def test_every_connection_as_an_annotation_with_canvases_as_targets(imported):
    artwork = imported["art-1"]
    artwork.extra = {**artwork.extra, "iiif_canvas": "https://museum.example/iiif/m1/canvas/p1"}
    artwork.save()
    document = export_document(BASE)
    assert document["@context"] == ANNO_CONTEXT and document["type"] == "AnnotationCollection"
    items = document["first"]["items"]
    assert document["total"] == len(items) == Connection.objects.count() == 4
    by_pair = {tuple(sorted(t[IDENTIFIER] for t in item["target"])): item for item in items}
    linked = by_pair[("art-0", "art-1")]
    assert linked["motivation"] == "linking" and linked["type"] == "Annotation"
    assert linked["body"][0] == {"type": "TextualBody", "purpose": "tagging", "value": "POSITIVE",
                                 "format": "text/plain"}  # fmt: skip
    canvases = {t[IDENTIFIER]: t["id"] for t in linked["target"]}
    assert canvases["art-1"] == "https://museum.example/iiif/m1/canvas/p1"  # the source's own canvas
    assert canvases["art-0"] == f"{BASE}/iiif/artworks/{imported['art-0'].pk}/canvas"  # the workbench's
    decision = Connection.objects.get(artwork_a=imported["art-0"], artwork_b=imported["art-1"]).latest
    assert linked["id"] == f"{BASE}/annotations/{decision.uid}"
    assert by_pair[("art-0", "art-5")]["body"][0]["value"] == "NEGATIVE"
    pairs, problems = read(document, "export")
    assert not problems and {pair.type for pair in pairs} == {"POSITIVE", "DUPLICATE", "NEGATIVE"}


def test_an_export_re_imported_elsewhere_recreates_the_connections_and_here_changes_nothing(
    imported, tmp_path
):
    document = export_document(BASE, history=True)
    before = ConnectionDecision.objects.count()
    result = import_document(document, "round-trip.jsonld", base=BASE)
    assert result["added"] == 0 and result["already_recorded"] == 4  # recognised by their ids
    assert ConnectionDecision.objects.count() == before

    # Another workbench: the same artworks (same external ids), no connections yet.
    Connection.objects.all().delete()
    ConnectionDecision.objects.all().delete()
    (tmp_path / "anno.jsonld").write_text(json.dumps(document))
    out = io.StringIO()
    call_command("import_annotations", "--file", str(tmp_path / "anno.jsonld"), stdout=out)
    assert "4 new connections" in out.getvalue()
    types = {
        tuple(sorted((c.artwork_a.external_id, c.artwork_b.external_id))): c.type
        for c in Connection.objects.select_related("artwork_a", "artwork_b")
    }
    assert types == {("art-0", "art-1"): "POSITIVE", ("art-1", "art-2"): "POSITIVE",
                     ("art-3", "art-4"): "DUPLICATE", ("art-0", "art-5"): "NEGATIVE"}  # fmt: skip


def test_annotations_that_are_not_connections_are_refused_all_together(imported, tmp_path):
    good = export_document(BASE)["first"]["items"][0]
    unknown = json.loads(json.dumps(good))
    unknown["target"][1] = {"id": "https://elsewhere.example/canvas/9", "type": "Canvas"}
    untyped = {**good, "body": {"type": "TextualBody", "purpose": "tagging", "value": "maybe"}}
    three = {**good, "target": [*good["target"], good["target"][0]]}
    same = {**good, "target": [good["target"][0], good["target"][0]]}
    page = {"type": "AnnotationPage", "items": [good, unknown, untyped, three, same, {"type": "Note"}]}
    Connection.objects.all().delete()
    ConnectionDecision.objects.all().delete()
    with pytest.raises(ImportFailed) as refused:
        import_document(page, "bad.jsonld", base=BASE)
    report = refused.value.report()
    for expected in ("annotation 1: unknown artwork https://elsewhere.example/canvas/9",
                     "annotation 2: needs one tagging body with a connection type",
                     "annotation 3: needs exactly two targets", "annotation 4: both targets are one artwork",
                     "annotation 5: not an Annotation"):  # fmt: skip
        assert expected in report
    assert not Connection.objects.exists()  # the good one was not applied either
    (tmp_path / "broken.jsonld").write_text("{")
    with pytest.raises(CommandError, match="not JSON"):
        call_command("import_annotations", "--file", str(tmp_path / "broken.jsonld"))


def test_the_command_line_and_the_dashboard_export(imported, tmp_path, client, django_user_model):
    target = tmp_path / "connections.jsonld"
    out = io.StringIO()
    call_command("export_connections", "--format", "webannotation", "--out", str(target),
                 "--base-url", BASE, stdout=out)  # fmt: skip
    assert "Wrote 4 annotations" in out.getvalue()
    assert json.loads(target.read_text())["first"]["items"][0]["id"].startswith(f"{BASE}/annotations/")
    client.force_login(django_user_model.objects.create_user("historian", password="pw"))
    assert 'id="export-webannotations"' in client.get("/").content.decode()
    response = client.get("/connections/export.jsonld?history=1")
    assert (
        response["Content-Type"].startswith("application/ld+json")
        and "attachment" in response["Content-Disposition"]
    )
    assert response.json()["first"]["items"][0]["id"].startswith("http://testserver/annotations/")
