"""Web Annotations out of and into the connection history (`web_annotations` builds and reads them):
the export beside the CSV one, and an all-or-nothing import through the one write path."""

from __future__ import annotations

import json
import re
from pathlib import Path

from django.db import transaction
from django.urls import reverse

from .connections import Statement, apply_statements
from .csvformats import Problem
from .exporting import iter_rows
from .importer import ImportFailed
from .models import Artwork, DecisionSource
from .web_annotations import annotation, collection, read

OWN_CANVAS = re.compile(r"/iiif/artworks/(\d+)/canvas$")


def own_canvas(base: str, artwork_id: int) -> str:
    """The artwork's canvas on the workbench at `base` (the id its manifests give it, `manifests`)."""
    return base.rstrip("/") + reverse("annotations:iiif_canvas", args=[artwork_id])


def export_document(
    base: str, *, history: bool = False, collection_name: str | None = None, include_simulated: bool = False
) -> dict:
    """Every current connection (or, with `history`, every decision) as an AnnotationCollection."""
    rows = list(iter_rows(history=history, collection=collection_name, include_simulated=include_simulated))
    external = {row[key] for row in rows for key in ("img1", "img2")}
    canvases = {}
    for pk, external_id, extra in (
        Artwork.objects.filter(external_id__in=external).values_list("pk", "external_id", "extra")
        if len(external) < 30000
        else Artwork.objects.values_list("pk", "external_id", "extra")
    ):
        canvases[external_id] = (extra or {}).get("iiif_canvas") or own_canvas(base, pk)
    items = []
    for row in rows:
        description = f"source: {row['source']}" + (f", round {row['round']}" if row["round"] else "")
        items.append(
            annotation(
                base,
                row["uid"],
                ((canvases[row["img1"]], row["img1"]), (canvases[row["img2"]], row["img2"])),
                row["type"],
                row["annotated"],
                row["user"],
                description,
            )
        )
    label = "Connection decisions" if history else "Connections"
    return collection(f"{base.rstrip('/')}/connections/export.jsonld", label, items)


def import_document(document: object, name: str, *, base: str = "", user=None) -> dict:
    """Apply the connections of a Web Annotation document, all or nothing: every annotation must be a
    connection between two known artworks (matched by external id, by a IIIF canvas an artwork was imported
    from, or by this workbench's own canvas when `base` is its address)."""
    pairs, problems = read(document, name)
    targets = {pair.first for pair in pairs} | {pair.second for pair in pairs}
    found = dict(Artwork.objects.filter(external_id__in=targets).values_list("external_id", "pk"))
    for pk, extra in Artwork.objects.filter(extra__has_key="iiif_canvas").values_list("pk", "extra"):
        if extra.get("iiif_canvas") in targets:
            found.setdefault(extra["iiif_canvas"], pk)
    if base:
        for target in targets - found.keys():
            match = OWN_CANVAS.search(target)
            if match and target.startswith(base.rstrip("/")):
                found[target] = int(match.group(1))
        existing = set(
            Artwork.objects.filter(pk__in=[v for v in found.values()]).values_list("pk", flat=True)
        )
        found = {key: pk for key, pk in found.items() if pk in existing}
    statements = []
    for pair in pairs:
        first, second = found.get(pair.first), found.get(pair.second)
        missing = [target for target, pk in ((pair.first, first), (pair.second, second)) if pk is None]
        if missing:
            problems.append(
                Problem(name, None, f"annotation {pair.index}: unknown artwork {', '.join(missing)}")
            )
            continue
        if first == second:
            problems.append(Problem(name, None, f"annotation {pair.index}: both targets are one artwork"))
            continue
        statements.append(
            Statement(
                first, second, pair.type, pair.uid, pair.annotated, {"file": name, "annotation": pair.index}
            )
        )
    if problems:
        raise ImportFailed(sorted(problems, key=lambda p: p.message)[:200])
    with transaction.atomic():
        applied = apply_statements(statements, source=DecisionSource.IMPORT, user=user, record_redundant=True)
    return {"annotations": len(pairs), "added": applied.added, "already_recorded": applied.already_recorded}


def import_file(path: Path, *, base: str = "", user=None) -> dict:
    try:
        document = json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ImportFailed([Problem(str(path), None, f"cannot read: {exc.strerror}")]) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportFailed([Problem(str(path), None, f"not JSON: {exc}")]) from None
    return import_document(document, str(path), base=base, user=user)
