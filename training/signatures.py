"""A model version's signatures, for the artworks a caller asks about (the Django side of `signature_store`).

Clustering, maps, search, exports and the commands all read signatures through here, so "which artworks,
which file, what if some are missing" is answered once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from annotations.models import Artwork
from workbench import paths

from . import signature_store
from .models import ModelVersion
from .signature_store import SignatureSet


class MissingSignatures(Exception):
    pass


def load(version: ModelVersion, for_clustering: bool = False) -> SignatureSet | None:
    """Every stored signature of `version`, or None when it has none yet.

    `for_clustering`: the signatures before whitening when the version has them. Whitening (which search
    and evaluation use) centres the signatures and spreads them over the sphere, so that the distances
    between copies are several times those the clustering parameters are calibrated for (the thesis's
    OPTICS max_eps 0.13 found no cluster in whitened demo signatures); clustering and the map keep the
    scale they were designed on."""
    if for_clustering:
        raw = signature_store.load(paths.raw_signatures_folder(version.number))
        if raw is not None:
            return raw
    return signature_store.load(paths.signatures_folder(version.number))


def save(version: ModelVersion, signatures: SignatureSet, raw: SignatureSet | None = None) -> None:
    """Store the signatures (and, for a whitened version, the same rows before whitening)."""
    if raw is not None:
        if raw.ids != signatures.ids:
            raise ValueError("the raw signatures must have the same ids, in the same order")
        signature_store.save(paths.raw_signatures_folder(version.number), raw)
    signature_store.save(paths.signatures_folder(version.number), signatures)


def ids_file(version: ModelVersion):
    return signature_store.ids_file(paths.signatures_folder(version.number))


def require(version: ModelVersion, for_clustering: bool = False) -> SignatureSet:
    stored = load(version, for_clustering)
    if stored is None:
        raise MissingSignatures(f"{version.label} has no signatures yet: run extract_signatures first")
    return stored


def of_artworks(
    version: ModelVersion, collections: Sequence[str] | None = None, for_clustering: bool = False
) -> SignatureSet:
    """Signatures of every artwork (of `collections`), in primary-key order; all of them must exist."""
    stored = require(version, for_clustering)
    artworks = Artwork.objects.order_by("pk")
    if collections:
        artworks = artworks.filter(collection__name__in=collections)
    wanted = list(artworks.values_list("pk", flat=True))
    subset = stored.subset(wanted)
    missing = len(wanted) - len(subset.ids)
    if missing:
        raise MissingSignatures(
            f"{missing} of {len(wanted)} artworks have no signature under {version.label}: "
            "run extract_signatures first"
        )
    if not subset.ids:
        raise MissingSignatures("no artworks to cluster")
    return SignatureSet(subset.ids, np.asarray(subset.vectors))
