"""Roles: annotators review and annotate; curators also import, train, cluster and promote.

A curator is a member of the "curators" group (or a superuser); every other logged-in user is an annotator.
`python manage.py set_role USER curator|annotator` changes a user's role.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

CURATORS = "curators"


def is_curator(user) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    cached = getattr(user, "_is_curator", None)
    if cached is None:
        cached = user.groups.filter(name=CURATORS).exists()
        user._is_curator = cached
    return cached


def curator_required(view):
    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_curator(request.user):
            raise PermissionDenied("Only curators can do this.")
        return view(request, *args, **kwargs)

    return wrapper


def roles(request) -> dict:
    """Template context: `is_curator`, so pages show curator actions only to curators."""
    return {"is_curator": is_curator(getattr(request, "user", None))}
