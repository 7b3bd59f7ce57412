"""File downloads built in memory (JSON exports of runs and decisions)."""

from __future__ import annotations

import json

from django.http import HttpResponse
from django.utils import timezone


def json_download(payload, filename: str) -> HttpResponse:
    """`payload` as an attachment named `<date-time>-<filename>`."""
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response = HttpResponse(json.dumps(payload, indent=1), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{stamp}-{filename}"'
    return response
