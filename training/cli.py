"""Command-line helpers shared by the training commands."""

from __future__ import annotations

from django.core.management.base import CommandError

from . import signature_store, signatures
from .models import ModelVersion, resolve_version


def version_with_signatures(name: str) -> tuple[ModelVersion, signature_store.SignatureSet]:
    """The model version `name` and its stored signatures, or a CommandError saying what to run."""
    try:
        version = resolve_version(name)
    except ModelVersion.DoesNotExist as exc:
        raise CommandError(str(exc)) from None
    stored = signatures.load(version)
    if stored is None:
        raise CommandError(
            f"{version.label} has no signatures yet: run extract_signatures --model {version.number}"
        )
    return version, stored
