"""Command-line helpers shared by the training commands."""

from __future__ import annotations

from django.core.management.base import CommandError

from . import signature_store, signatures
from .models import ModelVersion, resolve_version


def version_named(name: str) -> ModelVersion:
    """The model version `name` (a number, vN, active or latest), or a CommandError saying why not."""
    try:
        return resolve_version(name)
    except ModelVersion.DoesNotExist as exc:
        raise CommandError(str(exc)) from None


def top_option(value: int) -> int:
    """A --top that a ranking can answer."""
    if not 1 <= value <= 1000:
        raise CommandError("--top must be between 1 and 1000")
    return value


def version_with_signatures(name: str) -> tuple[ModelVersion, signature_store.SignatureSet]:
    """The model version `name` and its stored signatures, or a CommandError saying what to run."""
    version = version_named(name)
    stored = signatures.load(version)
    if stored is None:
        raise CommandError(
            f"{version.label} has no signatures yet: run extract_signatures --model {version.number}"
        )
    return version, stored
