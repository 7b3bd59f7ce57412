"""Connections and review decisions as W3C Web Annotations (JSON-LD, https://www.w3.org/TR/annotation-model/),
out and back in (issue 15, item 4). Plain: no Django.

One annotation per connection (or, with the history, per decision): motivation "linking", the two artworks as
its targets (their IIIF canvases: the source's canvas id when the artwork came from IIIF, the workbench's own
canvas otherwise), the connection type as a tagging body (POSITIVE, DUPLICATE, SIMILAR, NEGATIVE), who and
where it came from as a describing body, `created` the time it was annotated. The annotation's id ends with
the decision's uid, so importing an export into the workbench it came from recognises every decision as
already recorded.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from .connection_types import CONNECTION_TYPES, normalise_type
from .csvformats import Problem

ANNO_CONTEXT = "http://www.w3.org/ns/anno.jsonld"
# Each target also carries the artwork's external id (Dublin Core's identifier, as an absolute IRI: valid
# JSON-LD that other consumers ignore), so that a file re-imported elsewhere finds its artworks even where
# the canvases are this workbench's own.
IDENTIFIER = "http://purl.org/dc/terms/identifier"
UID_IN_ID = re.compile(r"/annotations/([A-Za-z0-9._:-]{1,200})$")


def annotation(
    base: str,
    uid: str,
    targets: tuple[tuple[str, str], tuple[str, str]],
    type_code: str,
    annotated: str,
    creator: str = "",
    description: str = "",
) -> dict:
    """One connection decision as a Web Annotation; `base` is the annotations' id prefix, `targets` the two
    artworks as (canvas id, external id)."""
    body = [{"type": "TextualBody", "purpose": "tagging", "value": type_code, "format": "text/plain"}]
    if description:
        body.append(
            {"type": "TextualBody", "purpose": "describing", "value": description, "format": "text/plain"}
        )
    result = {
        "@context": ANNO_CONTEXT,
        "id": f"{base.rstrip('/')}/annotations/{uid}",
        "type": "Annotation",
        "motivation": "linking",
        "created": annotated,
        "body": body,
        "target": [{"id": canvas, "type": "Canvas", IDENTIFIER: external} for canvas, external in targets],
    }
    if creator:
        result["creator"] = {"type": "Person", "nickname": creator}
    return result


def collection(collection_id: str, label: str, items: list[dict]) -> dict:
    """An AnnotationCollection with its one page embedded (a download, not a paged service)."""
    return {
        "@context": ANNO_CONTEXT,
        "id": collection_id,
        "type": "AnnotationCollection",
        "label": label,
        "total": len(items),
        "first": {"id": f"{collection_id}#page-1", "type": "AnnotationPage", "startIndex": 0, "items": items},
    }


@dataclass
class AnnotatedPair:
    index: int  # position in the file, for messages
    uid: str
    first: str  # target ids (canvas URIs, or external ids)
    second: str
    type: str
    annotated: datetime | None


def items_of(document: object, name: str) -> tuple[list, list[Problem]]:
    if isinstance(document, list):
        return document, []
    if not isinstance(document, dict):
        return [], [Problem(name, None, "expected a JSON object or array of annotations")]
    kind = document.get("type")
    if kind == "Annotation":
        return [document], []
    if kind == "AnnotationPage":
        return list(document.get("items") or []), []
    if kind == "AnnotationCollection":
        first = document.get("first")
        if not isinstance(first, dict):
            return [], [
                Problem(name, None, "the collection's pages are not embedded (first is not an object)")
            ]
        return list(first.get("items") or []), []
    return [], [
        Problem(name, None, f"not an Annotation, AnnotationPage or AnnotationCollection (type {kind!r})")
    ]


def target_id(target: object) -> str | None:
    """The target's external id when it carries one, else its id (a canvas, or any IRI)."""
    if isinstance(target, str):
        return target
    if isinstance(target, dict):
        if isinstance(target.get(IDENTIFIER), str):
            return target[IDENTIFIER]
        for key in ("id", "source", "@id"):
            value = target.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, dict) and isinstance(value.get("id"), str):
                return value["id"]
    return None


def read(document: object, name: str) -> tuple[list[AnnotatedPair], list[Problem]]:
    """The connection statements of a Web Annotation document, and a problem (with the annotation's index)
    for each that is not one: two targets, a tagging body naming a connection type."""
    items, problems = items_of(document, name)
    pairs = []
    for index, item in enumerate(items):
        where = f"annotation {index}"
        if not isinstance(item, dict) or item.get("type") != "Annotation":
            problems.append(Problem(name, None, f"{where}: not an Annotation"))
            continue
        targets = item.get("target")
        targets = targets if isinstance(targets, list) else [targets]
        ids = [target_id(target) for target in targets]
        if len(ids) != 2 or None in ids:
            problems.append(
                Problem(name, None, f"{where}: needs exactly two targets with ids, has {len(ids)}")
            )
            continue
        bodies = item.get("body")
        bodies = bodies if isinstance(bodies, list) else [bodies]
        tags = [
            body.get("value")
            for body in bodies
            if isinstance(body, dict)
            and body.get("purpose") == "tagging"
            and isinstance(body.get("value"), str)
        ]
        types = [normalise_type(tag) for tag in tags]
        known = [t for t in types if t in CONNECTION_TYPES]
        if len(known) != 1:
            problems.append(
                Problem(name, None, f"{where}: needs one tagging body with a connection type "
                        f"({', '.join(CONNECTION_TYPES)}), has {tags or 'none'}")
            )  # fmt: skip
            continue
        created = item.get("created")
        annotated = None
        if isinstance(created, str) and created:
            try:
                annotated = datetime.fromisoformat(created.replace("Z", "+00:00"))
            except ValueError:
                problems.append(Problem(name, None, f"{where}: created is not an ISO 8601 time: {created!r}"))
                continue
        identifier = item.get("id")
        found = UID_IN_ID.search(identifier) if isinstance(identifier, str) else None
        if found:
            uid = found.group(1)
        elif isinstance(identifier, str):
            uid = "wa-" + hashlib.sha1(identifier.encode()).hexdigest()[:24]
        else:
            uid = ""
        pairs.append(AnnotatedPair(index, uid, ids[0], ids[1], known[0], annotated))
    return pairs, problems
