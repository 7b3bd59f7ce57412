"""IIIF in (issue 15, item 1): read Presentation 2.1 and 3.0 manifests and collections into canvases, and
fetch their images politely. Plain: no Django (`annotations.iiif_import` turns the result into an import).

Library choice. `iiif-prezi3` (the IIIF community's Python library) builds and validates Presentation 3
only, its model accepts what it cannot use (a canvas without an id), and it caps Pillow at 12 while the
workbench pins 13 (the tests install it without its dependencies, to build and check manifests). `piffle`
reads both versions into thin dataclasses but fetches with `requests` without a timeout or retries, prints
its warnings to stdout and leaves image resources and services as raw dicts, so the part that matters here
(which image, which service, at which size) would still be ours. The subset read here is small and exactly
specified: 2.1 `sequences[0].canvases[*].images[0].resource` (+ `service`), 3.0 `items[*].items[0].items[0]
.body` (+ `service`), labels and metadata in both forms, `navDate`, `license`/`rights`, `attribution`/
`requiredStatement`; anything else in a manifest is ignored, anything malformed is reported with its path
in the document.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

USER_AGENT = "workbench-iiif-import/1 (+https://iiif.io)"
IMAGE2_CONTEXT = "http://iiif.io/api/image/2"


class IIIFError(ValueError):
    """A manifest or collection that cannot be read, with where in the document."""


@dataclass
class Canvas:
    canvas_id: str
    label: str
    width: int | None
    height: int | None
    image_url: str  # the full image as the manifest names it
    service_id: str | None  # its Image API service, when it has one
    service_version: int | None  # 2 or 3
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class Manifest:
    manifest_id: str
    label: str
    version: int
    canvases: list[Canvas]
    metadata: dict[str, str] = field(default_factory=dict)  # label, navDate, rights, attribution, pairs


@dataclass
class Collection:
    collection_id: str
    label: str
    manifests: list[str]  # ids of the manifests (and sub-collections) it lists, in order


def text_of(value, where: str) -> str:
    """A 2.1 string/list/{"@value"} or a 3.0 language map, as one string (languages joined)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "; ".join(part for part in (text_of(item, where) for item in value) if part)
    if isinstance(value, dict):
        if "@value" in value:
            return text_of(value["@value"], where)
        return "; ".join(part for part in (text_of(item, where) for item in value.values()) if part)
    raise IIIFError(f"{where}: expected text, got {type(value).__name__}")


def version_of(document: dict) -> int:
    contexts = document.get("@context", [])
    contexts = contexts if isinstance(contexts, list) else [contexts]
    if any(isinstance(c, str) and "presentation/3" in c for c in contexts):
        return 3
    if any(isinstance(c, str) and "presentation/2" in c for c in contexts):
        return 2
    # No (or an unusual) context: the type's spelling tells ("sc:Manifest" is 2.x).
    return 2 if str(document.get("@type", "")).startswith("sc:") else 3


def parse(document: object, where: str = "document") -> Manifest | Collection:
    """A manifest or a collection (2.1 or 3.0), or IIIFError saying what is wrong where."""
    if not isinstance(document, dict):
        raise IIIFError(f"{where}: a IIIF document is a JSON object, got {type(document).__name__}")
    version = version_of(document)
    kind = str(document.get("@type" if version == 2 else "type", ""))
    identifier = document.get("@id" if version == 2 else "id")
    if not isinstance(identifier, str) or not identifier:
        raise IIIFError(f"{where}: no {'@id' if version == 2 else 'id'}")
    label = text_of(document.get("label"), f"{where}.label")
    if kind in ("sc:Collection", "Collection"):
        return Collection(identifier, label, collection_members(document, version, where))
    if kind not in ("sc:Manifest", "Manifest"):
        raise IIIFError(f"{where}: not a Manifest or Collection (type {kind!r})")
    canvases = canvases_2(document, where) if version == 2 else canvases_3(document, where)
    if not canvases:
        raise IIIFError(f"{where}: the manifest has no canvas with an image")
    return Manifest(identifier, label, version, canvases, manifest_metadata(document, version, where))


def collection_members(document: dict, version: int, where: str) -> list[str]:
    if version == 2:
        entries = [
            *document.get("manifests", []),
            *document.get("collections", []),
            *document.get("members", []),
        ]
        key = "@id"
    else:
        entries, key = document.get("items", []), "id"
    members = []
    for number, entry in enumerate(entries):
        member = entry.get(key) if isinstance(entry, dict) else entry
        if not isinstance(member, str) or not member:
            raise IIIFError(f"{where}.items[{number}]: a member without an id")
        members.append(member)
    return members


def manifest_metadata(document: dict, version: int, where: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for number, pair in enumerate(document.get("metadata") or []):
        if not isinstance(pair, dict):
            raise IIIFError(f"{where}.metadata[{number}]: expected a label/value pair")
        name = text_of(pair.get("label"), f"{where}.metadata[{number}].label").strip()
        if name:
            found[name] = text_of(pair.get("value"), f"{where}.metadata[{number}].value")
    if document.get("navDate"):
        found["navDate"] = text_of(document["navDate"], f"{where}.navDate")
    rights = document.get("license") if version == 2 else document.get("rights")
    if rights:
        found["rights"] = text_of(rights, f"{where}.rights")
    if version == 2 and document.get("attribution"):
        found["attribution"] = text_of(document["attribution"], f"{where}.attribution")
    statement = document.get("requiredStatement")
    if isinstance(statement, dict):
        found["attribution"] = text_of(statement.get("value"), f"{where}.requiredStatement")
    return found


def service_of(resource: dict) -> tuple[str | None, int | None]:
    services = resource.get("service")
    services = services if isinstance(services, list) else [services] if services else []
    for service in services:
        if not isinstance(service, dict):
            continue
        identifier = service.get("@id") or service.get("id")
        if not isinstance(identifier, str):
            continue
        kind = str(service.get("type") or service.get("@type") or "")
        context = json.dumps(service.get("@context", "")) + json.dumps(service.get("profile", ""))
        version = (
            3
            if kind == "ImageService3"
            else 2
            if (kind == "ImageService2" or IMAGE2_CONTEXT in context)
            else None
        )
        return identifier.rstrip("/"), version or 2
    return None, None


def number_or_none(value) -> int | None:
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def canvas_of(canvas: dict, identifier: str, resource: dict, image_url: object, where: str) -> Canvas:
    """A canvas with its image: the image resource's own URL and its Image API service (one is enough)."""
    service_id, service_version = service_of(resource)
    if not isinstance(image_url, str) and service_id is None:
        raise IIIFError(f"{where}: neither an image id nor a service")
    return Canvas(
        identifier,
        text_of(canvas.get("label"), f"{where}.label"),
        number_or_none(canvas.get("width")),
        number_or_none(canvas.get("height")),
        image_url if isinstance(image_url, str) else "",
        service_id,
        service_version,
    )


def canvases_2(document: dict, where: str) -> list[Canvas]:
    sequences = document.get("sequences") or []
    if not sequences or not isinstance(sequences[0], dict):
        raise IIIFError(f"{where}: a 2.1 manifest needs sequences[0]")
    found = []
    for number, canvas in enumerate(sequences[0].get("canvases") or []):
        place = f"{where}.sequences[0].canvases[{number}]"
        if not isinstance(canvas, dict) or not isinstance(canvas.get("@id"), str):
            raise IIIFError(f"{place}: a canvas without an @id")
        images = canvas.get("images") or []
        resource = images[0].get("resource") if images and isinstance(images[0], dict) else None
        if not isinstance(resource, dict):
            continue  # a canvas without an image (a blank page): nothing to import
        found.append(
            canvas_of(canvas, canvas["@id"], resource, resource.get("@id"), f"{place}.images[0].resource")
        )
    return found


def canvases_3(document: dict, where: str) -> list[Canvas]:
    found = []
    for number, canvas in enumerate(document.get("items") or []):
        place = f"{where}.items[{number}]"
        if not isinstance(canvas, dict) or not isinstance(canvas.get("id"), str):
            raise IIIFError(f"{place}: a canvas without an id")
        try:
            body = canvas["items"][0]["items"][0]["body"]
        except (KeyError, IndexError, TypeError):
            continue  # no painting annotation: nothing to import
        if isinstance(body, list):
            body = body[0] if body else None
        if isinstance(body, dict) and body.get("type") == "Choice":
            body = (body.get("items") or [None])[0]
        if not isinstance(body, dict) or body.get("type") not in ("Image", None):
            continue  # sound, video or text: not an artwork's image
        canvas_record = canvas_of(canvas, canvas["id"], body, body.get("id"), f"{place}: the painting's body")
        canvas_record.metadata = manifest_metadata(canvas, 3, place)
        found.append(canvas_record)
    return found


def image_request(canvas: Canvas, size: int) -> list[str]:
    """The URLs to try for the canvas's image, best first: its Image API service at `size` pixels on the
    longer side ("!w,h" confines, the same syntax in Image API 2.1 and 3.0 §4.2), then the image the
    manifest names. Never larger than the canvas: Image API 2.1 lets "!w,h" upscale (IIPImage does, up to
    5,000 px), and an upscaled photograph is only a bigger file with the same detail."""
    urls = []
    if canvas.service_id:
        if canvas.width and canvas.height:
            size = min(size, max(canvas.width, canvas.height))
        urls.append(f"{canvas.service_id}/full/!{size},{size}/0/default.jpg")
    if canvas.image_url:
        urls.append(canvas.image_url)
    return urls


@dataclass
class Fetcher:
    """Bounded, polite HTTP GETs: a timeout per request, retries with exponential back-off on errors that
    may pass (timeouts, 429, 5xx), never on 4xx. `sleep` is replaceable in tests."""

    timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 1.0
    max_bytes: int = 200 * 1024 * 1024
    sleep: Callable[[float], None] = time.sleep

    def get(self, url: str) -> bytes:
        if not url.startswith(("http://", "https://")):
            raise IIIFError(f"{url}: only http and https are fetched")
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "*/*"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    data = response.read(self.max_bytes + 1)
            except urllib.error.HTTPError as exc:
                last = exc
                if exc.code != 429 and exc.code < 500:
                    raise IIIFError(f"{url}: HTTP {exc.code} {exc.reason}") from None
                continue
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                last = exc
                continue
            if len(data) > self.max_bytes:
                raise IIIFError(f"{url}: larger than {self.max_bytes:,} bytes")
            return data
        if isinstance(last, urllib.error.HTTPError):
            reason = f"HTTP {last.code} {last.reason}"
        else:
            reason = getattr(last, "reason", None) or last
        raise IIIFError(f"{url}: failed after {self.retries + 1} tries ({reason})")

    def document(self, location: str) -> object:
        """A JSON document from a URL or a local file."""
        if location.startswith(("http://", "https://")):
            raw = self.get(location)
        else:
            try:
                raw = Path(location).read_bytes()
            except OSError as exc:
                raise IIIFError(f"{location}: cannot read ({exc.strerror})") from None
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IIIFError(f"{location}: not JSON ({exc})") from None
