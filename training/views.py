"""Training pages: rounds (start one, follow it, promote a version) and search (nearest artworks under a
model version, for an artwork or an uploaded image, two versions side by side)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotations.connection_types import CONNECTION_TYPES
from annotations.images import ImageProblem, query_image
from annotations.models import Artwork, Connection
from jobs import pipeline
from jobs.models import Job
from jobs.runner import enqueue
from workbench import params as parse
from workbench import paths
from workbench.roles import curator_required

from .models import Face, ModelVersion, NotReviewModel, resolve_version
from .search import artwork_features, nearest_to_artwork, nearest_to_image, signature_of_image, signatures
from .verification import MIN_INLIERS, match, render_matches

TOP_K = 24
# An uploaded query is decoded once, at most this many pixels a side: models embed at a few hundred.
QUERY_SIDE = 1024
# A query is one picture held in the web process while it is decoded; the import's own limit
# (MAX_IMAGE_BYTES, 200 MiB by default) is for files a worker reads one at a time.
MAX_SEARCH_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_EPOCHS = 200
PAIR_HEIGHT = 480


@login_required
@require_GET
def rounds(request: HttpRequest) -> HttpResponse:
    versions = list(ModelVersion.objects.select_related("parent", "created_by").order_by("-number")[:20])
    from .backbones import ALL_BACKBONES
    from .label_models import LABEL_METHODS

    context = {
        "versions": versions,
        "label_methods": LABEL_METHODS,
        "backbones": ALL_BACKBONES,
        # The clustering runs come from clustering's `clustering_runs` tag: training does not import it.
        "jobs": Job.objects.filter(kind__in=pipeline.PIPELINE_KINDS).select_related("created_by")[:10],
    }
    return render(request, "training/rounds.html", context)


@curator_required
@require_POST
def start_round(request: HttpRequest) -> HttpResponse:
    """train → extract → cluster → map, on a worker; the page follows its progress."""
    params = pipeline.with_follow_ups({"force": request.POST.get("force") == "1"})
    epochs = request.POST.get("epochs", "").strip()
    if epochs:
        try:
            params["epochs"] = parse.integer(epochs, "epochs", low=1, high=MAX_EPOCHS)
        except parse.OutOfRange as exc:
            # A number the form could send: back to the form with the reason. Anything else (not a number
            # at all) came from no form, and BadParameter answers it with 400.
            messages.error(request, f"{str(exc).capitalize()}.")
            return redirect("training:rounds")
    job = enqueue("train_round", params, user=request.user)
    messages.success(
        request, f"Round started as job #{job.pk}: training, then signatures, clustering and the map."
    )
    return redirect("jobs:detail", job.pk)


@curator_required
@require_POST
def start_label_model(request: HttpRequest) -> HttpResponse:
    """Train a label-supervised model (`train_model` job), then compute its map; the page follows it."""
    from .backbones import ALL_BACKBONES
    from .label_models import LABEL_METHODS

    params: dict = {
        "method": parse.choice(request.POST.get("method"), "method", LABEL_METHODS),
        "force": request.POST.get("force") == "1",
    }
    labels = parse.text(request.POST.get("labels", ""), "labels", max_length=500).split()
    if labels:
        params["labels"] = labels
    backbone = request.POST.get("backbone", "").strip()
    if backbone:
        params["backbone"] = parse.choice(backbone, "backbone", ALL_BACKBONES)
    epochs = request.POST.get("epochs", "").strip()
    try:
        if epochs:
            params["epochs"] = parse.integer(epochs, "epochs", low=1, high=MAX_EPOCHS)
        if params["method"] == "style-classifier" and len(labels) > 1:
            raise parse.OutOfRange("the style classifier predicts one label: name one, or use multitask-knn")
    except parse.OutOfRange as exc:
        messages.error(request, f"{str(exc).capitalize()}.")
        return redirect("training:rounds")
    job = enqueue("train_model", pipeline.with_label_follow_ups(params), user=request.user)
    messages.success(request, f"{params['method']} training started as job #{job.pk}, then its map.")
    return redirect("jobs:detail", job.pk)


@curator_required
@require_POST
def start_face_detection(request: HttpRequest) -> HttpResponse:
    """detect_faces, then every version's face index, on a worker; the page follows it."""
    from .faces import POLICIES

    policy = parse.choice(request.POST.get("policy", "largest"), "policy", POLICIES)
    job = enqueue("detect_faces", pipeline.with_face_index({}, policy=policy), user=request.user)
    messages.success(request, f"Face detection started as job #{job.pk}, then the face indexes.")
    return redirect("jobs:detail", job.pk)


@curator_required
@require_POST
def promote(request: HttpRequest, number: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, number=number)
    try:
        version.activate()
    except NotReviewModel as exc:
        messages.error(request, str(exc))
        return redirect("training:rounds")
    messages.success(request, f"{version.label} is now the active model version.")
    return redirect("training:rounds")


def pick_version(value: str | None) -> ModelVersion | None:
    """`resolve_version` for a page: None (shown as "no model version") instead of an error."""
    try:
        return resolve_version(value or "active")
    except ModelVersion.DoesNotExist:
        return None


def with_artworks(hits, source_id: int | None = None) -> list[dict]:
    artworks = Artwork.objects.select_related("collection").in_bulk([h.artwork_id for h in hits])
    links = {}
    if source_id is not None:
        for conn in Connection.objects.filter(
            Q(artwork_a_id=source_id, artwork_b_id__in=artworks)
            | Q(artwork_b_id=source_id, artwork_a_id__in=artworks)
        ):
            other = conn.artwork_b_id if conn.artwork_a_id == source_id else conn.artwork_a_id
            links[other] = conn.type
    return [
        {"artwork": artworks[h.artwork_id], "score": h.score, "hit": h, "link": links.get(h.artwork_id)}
        for h in hits
        if h.artwork_id in artworks
    ]


@login_required
@require_GET
def artwork_neighbours(request: HttpRequest, artwork_id: int) -> HttpResponse:
    """The artwork page's "nearest under the active model" panel, with link buttons."""
    artwork = get_object_or_404(Artwork, pk=artwork_id)
    version = pick_version(request.GET.get("model"))
    hits = nearest_to_artwork(version, artwork.pk, k=12) if version else None
    context = {
        "artwork": artwork,
        "version": version,
        "results": with_artworks(hits, artwork.pk) if hits else [],
        "missing": hits is None,
        "types": list(CONNECTION_TYPES),
        "cform": blank_conditional_form(),
    }
    return render(request, "training/_neighbours.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def search(request: HttpRequest) -> HttpResponse:
    versions = list(ModelVersion.objects.order_by("-number"))
    first = pick_version(request.GET.get("model") or request.POST.get("model"))
    second = (
        pick_version(request.GET.get("compare") or request.POST.get("compare"))
        if (request.GET.get("compare") or request.POST.get("compare"))
        else None
    )
    query_text = parse.text(request.GET.get("q", ""), "q")
    context: dict = {"versions": versions, "first": first, "second": second, "q": query_text, "columns": []}
    if query_text:
        context["matches"] = Artwork.objects.filter(
            Q(title__icontains=query_text)
            | Q(author__icontains=query_text)
            | Q(external_id__icontains=query_text)
        ).select_related("collection")[:30]
    artwork = None
    face = None
    faces = face_request(request)
    context["faces"] = faces
    if faces["face"]:
        face = get_object_or_404(Face.objects.select_related("artwork"), pk=faces["face"])
        artwork = face.artwork
    elif request.GET.get("artwork", "").strip():
        artwork = get_object_or_404(Artwork, pk=parse.database_id(request.GET["artwork"], "artwork"))
    if artwork is not None:
        context["artwork"] = artwork
        context["query_face"] = face
        context["cform"] = blank_conditional_form()
        for version in [v for v in (first, second) if v is not None]:
            if faces["mode"] == "whole" and face is None:
                hits = nearest_to_artwork(version, artwork.pk, k=TOP_K)
                column = {"version": version, "results": with_artworks(hits or [], artwork.pk)}
                column["missing"] = hits is None
            else:
                column = face_column(version, artwork, face, faces)
            context["columns"].append(column)
    if request.method == "POST":
        upload = request.FILES.get("image")
        problem = upload_problem(upload)
        if problem:
            context["upload_error"] = problem
        else:
            try:
                picture = query_image(b"".join(upload.chunks()), settings.MAX_IMAGE_PIXELS, QUERY_SIDE)
            except ImageProblem as exc:
                context["upload_error"] = f"{upload.name}: {exc}"
            else:
                context["uploaded"] = upload.name
                with tempfile.TemporaryDirectory() as folder:
                    path = Path(folder) / "query.png"
                    picture.save(path, "PNG", compress_level=1)
                    for version in [v for v in (first, second) if v is not None]:
                        vector = signature_of_image(version, path)
                        hits = nearest_to_image(version, vector, path, TOP_K)
                        context["columns"].append(
                            {"version": version, "results": with_artworks(hits), "missing": False}
                        )
    return render(request, "training/search.html", context)


def face_request(request: HttpRequest) -> dict:
    """The search page's face choices: mode (whole, face, fused), the face's weight, a face to search by."""
    from .faces import DEFAULT_FACE_WEIGHT, MODES

    face = request.GET.get("face", "").strip()
    weight = request.GET.get("weight", "").strip()
    return {
        "modes": MODES,
        "mode": parse.choice(request.GET.get("mode") or ("face" if face else "whole"), "mode", MODES),
        "weight": parse.number(weight, "weight", low=0.0, high=1.0) if weight else DEFAULT_FACE_WEIGHT,
        "face": parse.database_id(face, "face") if face else None,
    }


def face_column(version: ModelVersion, artwork: Artwork, face: Face | None, faces: dict) -> dict:
    """One version's results by face or fused (`face_search`), or why there are none."""
    from .face_detection import FaceIndexMissing
    from .face_search import FaceSearchError, search

    column: dict = {"version": version, "results": [], "missing": False}
    try:
        found = search(
            version, artwork.pk, face.pk if face else None, faces["mode"], faces["weight"], k=TOP_K
        )
    except (FaceSearchError, FaceIndexMissing) as exc:
        column["problem"] = str(exc)
        return column
    column["results"] = with_artworks(found.hits, artwork.pk)
    column["note"] = found.note
    column["used"] = found.used
    return column


@login_required
@require_GET
def artwork_faces(request: HttpRequest, artwork_id: int) -> JsonResponse:
    """The artwork's detected faces, for the boxes drawn on its image (fractions of the image's size)."""
    from .face_detection import current_faces

    artwork = get_object_or_404(Artwork, pk=artwork_id)
    faces = current_faces([artwork.pk]).get(artwork.pk, [])
    search_url = reverse("training:search")
    return JsonResponse(
        {
            "artwork": artwork.pk,
            "fused_url": f"{search_url}?artwork={artwork.pk}&mode=fused",
            "faces": [
                {
                    "id": face.pk,
                    "box": [face.x1, face.y1, face.x2, face.y2],
                    "relative": [
                        face.x1 / artwork.width,
                        face.y1 / artwork.height,
                        face.width / artwork.width,
                        face.height / artwork.height,
                    ],
                    "probability": round(face.probability, 4),
                    "search_url": f"{search_url}?face={face.pk}&mode=face",
                }
                for face in faces
            ],
        }
    )


def upload_problem(upload) -> str | None:
    if upload is None:
        return "Choose an image file to search with."
    limit = min(settings.MAX_IMAGE_BYTES, MAX_SEARCH_UPLOAD_BYTES)
    if upload.size > limit:
        return f"{upload.name} is {upload.size:,} bytes, over the limit of {limit:,} bytes for a search."
    return None


@login_required
@require_GET
def pair(request: HttpRequest, first_id: int, second_id: int) -> HttpResponse:
    """Two artworks side by side with the local features that match under one geometric map: *why* the
    workbench thinks they are connected (or that it found no such evidence)."""
    first = get_object_or_404(Artwork, pk=first_id)
    second = get_object_or_404(Artwork, pk=second_id)
    found = match(artwork_features(first), artwork_features(second))
    similarity = None
    version = pick_version(request.GET.get("model"))
    loaded = signatures(version) if version else None
    if loaded is not None:
        stored, rows = loaded
        if first.pk in rows and second.pk in rows:
            similarity = float(stored.vectors[rows[first.pk]] @ stored.vectors[rows[second.pk]])
    links = Connection.objects.filter(
        Q(artwork_a=first, artwork_b=second) | Q(artwork_a=second, artwork_b=first)
    ).values_list("type", flat=True)
    context = {
        "first": first,
        "second": second,
        "match": found,
        "verified": found.inliers >= MIN_INLIERS,
        "min_inliers": MIN_INLIERS,
        "version": version,
        "similarity": similarity,
        "links": list(links),
        "types": list(CONNECTION_TYPES),
    }
    return render(request, "training/pair.html", context)


@login_required
@require_GET
def pair_matches_image(request: HttpRequest, first_id: int, second_id: int) -> HttpResponse:
    """The pair view's picture: both images side by side, a line per matched keypoint."""
    first = get_object_or_404(Artwork, pk=first_id)
    second = get_object_or_404(Artwork, pk=second_id)
    found = match(artwork_features(first), artwork_features(second))
    png = render_matches(
        paths.absolute(first.image_relpath), paths.absolute(second.image_relpath), found, height=PAIR_HEIGHT
    )
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response


def conditional_versions() -> list[dict]:
    """Backward-search versions, newest first, with the classes each can be conditioned on."""
    from .conditional_search import METHOD

    versions = []
    for version in ModelVersion.objects.filter(method=METHOD).order_by("-number"):
        tasks = version.config.get("label_tasks", {})
        versions.append(
            {
                "version": version,
                "tasks": [(name, task.get("classes", [])) for name, task in tasks.items()],
                "has_student": "student" in (version.metrics or {}),
            }
        )
    return versions


def blank_conditional_form() -> dict:
    available = conditional_versions()
    return {
        "available": available,
        "chosen": available[0] if available else None,
        "wanted": [],
        "lambda": "",
        "mode": "optimisation",
    }


def conditional_request(request: HttpRequest, page: bool = False) -> tuple[dict, dict | None]:
    """The form's state and, when the request names a query, the search's result. ConditionalSearchError
    (and the parameter errors) for bad input."""
    from .conditional_search import ConditionalSearchError, parse_lambda
    from .conditional_search import search as conditional_search

    available = conditional_versions()
    chosen_value = request.GET.get("model", "").strip()
    chosen = None
    if chosen_value:
        try:
            version = resolve_version(chosen_value)
        except ModelVersion.DoesNotExist as exc:
            raise ConditionalSearchError(str(exc)) from None
        chosen = next((v for v in available if v["version"].pk == version.pk), None)
        if chosen is None:  # not a backward-search version: `search` says why
            chosen = {"version": version, "tasks": [], "has_student": False}
    elif available:
        chosen = available[0]
    wanted = [c for c in request.GET.getlist("condition") if c.strip()]
    mode = request.GET.get("mode", "optimisation")
    if mode not in ("optimisation", "student"):
        raise ConditionalSearchError("mode must be 'optimisation' or 'student'")
    form = {
        "available": available,
        "chosen": chosen,
        "wanted": wanted,
        "lambda": request.GET.get("lambda", ""),
        "mode": mode,
        "artwork_id": request.GET.get("artwork", ""),
    }
    if not request.GET.get("artwork", "").strip() or (page and "condition" not in request.GET):
        return form, None  # the page shows the form (another model was chosen: its classes)
    if chosen is None:
        raise ConditionalSearchError("no backward-search model yet: a curator trains one on the rounds page")
    try:
        artwork_id = parse.database_id(request.GET["artwork"], "artwork")
        lam = parse_lambda(request.GET.get("lambda"))
        top = parse.integer(request.GET.get("top", str(TOP_K)), "top", low=1, high=200)
        result = conditional_search(chosen["version"], artwork_id, wanted, lam, mode == "student", top)
    except (ConditionalSearchError, parse.BadParameter) as exc:
        exc.form = form  # type: ignore[attr-defined]  # the page keeps what was asked, to correct it
        raise
    return form, result


@login_required
@require_GET
def conditional(request: HttpRequest) -> HttpResponse:
    """ "Like this one, but …": a backward-search version's conditional results beside its plain ones."""
    from .conditional_search import ConditionalSearchError

    context: dict = {}
    try:
        context["form"], context["result"] = conditional_request(request, page=True)
    except (ConditionalSearchError, parse.BadParameter) as exc:
        context["form"] = getattr(exc, "form", None) or {
            **blank_conditional_form(),
            "artwork_id": request.GET.get("artwork", ""),
        }
        context["error"] = str(exc)
        return render(request, "training/conditional.html", context, status=400)
    result = context["result"]
    if result is not None:
        context["query"] = Artwork.objects.get(pk=result["query"])
    return render(request, "training/conditional.html", context)


@login_required
@require_GET
def conditional_json(request: HttpRequest) -> JsonResponse:
    """The same search as JSON: ranked hits with scores, predicted classes and similarity to the query."""
    from .conditional_search import ConditionalSearchError, as_json

    try:
        _, result = conditional_request(request)
    except (ConditionalSearchError, parse.BadParameter) as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    if result is None:
        return JsonResponse({"error": "name the query artwork (artwork=ID)"}, status=400)
    return JsonResponse(as_json(result))
