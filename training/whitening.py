"""Whitening of signatures, learned on the collection (plain module, no Django).

A pretrained or fine-tuned descriptor spends most of its variance on a few directions that every painting
shares (varnish, canvas, the average composition); cosine similarity is then dominated by them and a copy
ranks below unrelated paintings that share the collection's look. Whitening (centring on the collection's
mean, rotating to its principal axes and scaling each by 1/sqrt(variance)) evens the directions out, so
that what is *particular* to a picture decides the ranking. Jégou & Chum, "Negative evidences and
co-occurrences in image retrieval: the benefit of PCA and whitening", ECCV 2012; Radenović, Tolias & Chum,
"Fine-tuning CNN image retrieval with no human annotation", TPAMI 2018 (learned whitening).

It is learned without labels on the collection the signatures serve, so it needs no connection, and it is
fitted again each round on that round's raw signatures. With fewer images than dimensions the covariance is
singular and plain whitening would blow the noise of the null directions up: every eigenvalue is shrunk
towards the mean one (`shrinkage` × mean eigenvalue added before the inverse square root). Measured on the
demo and a People-Art development set (bench/signature_quality.py --ablation): shrinkage 1.0 keeps all the
gain of whitening without the collapse of the unshrunk version.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_SHRINKAGE = 1.0
MIN_IMAGES = 8  # below this there is no covariance worth the name: signatures stay raw


@dataclass
class Whitening:
    mean: np.ndarray  # (D,) float32
    projection: np.ndarray  # (D, K) float32
    shrinkage: float
    images: int  # how many signatures it was learned on

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Whitened, L2-normalised copies of (N, D) raw signatures."""
        whitened = (np.asarray(vectors, dtype=np.float32) - self.mean) @ self.projection
        return (whitened / np.linalg.norm(whitened, axis=1, keepdims=True).clip(min=1e-12)).astype(np.float32)

    def apply_torch(self, vectors: torch.Tensor) -> torch.Tensor:
        mean = torch.from_numpy(self.mean).to(vectors.device)
        projection = torch.from_numpy(self.projection).to(vectors.device)
        return F.normalize((vectors.float() - mean) @ projection, p=2.0, dim=1)

    def state(self) -> dict:
        """For a checkpoint (tensors and numbers only: it loads with weights_only=True)."""
        return {
            "mean": torch.from_numpy(self.mean),
            "projection": torch.from_numpy(self.projection),
            "shrinkage": self.shrinkage,
            "images": self.images,
        }

    @classmethod
    def from_state(cls, state: dict) -> Whitening:
        return cls(
            np.asarray(state["mean"], dtype=np.float32),
            np.asarray(state["projection"], dtype=np.float32),
            float(state["shrinkage"]),
            int(state["images"]),
        )


def fit(vectors: np.ndarray, shrinkage: float = DEFAULT_SHRINKAGE) -> Whitening | None:
    """Learn the whitening of (N, D) signatures; None when there are fewer than MIN_IMAGES of them."""
    if shrinkage < 0:
        raise ValueError(f"shrinkage must be at least 0, got {shrinkage}")
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) < MIN_IMAGES:
        return None
    mean = x.mean(axis=0)
    centred = x - mean
    covariance = centred.T @ centred / len(x)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = eigenvalues[order].clip(min=0), eigenvectors[:, order]
    floor = shrinkage * eigenvalues.mean() + 1e-12
    projection = eigenvectors / np.sqrt(eigenvalues + floor)
    return Whitening(mean.astype(np.float32), projection.astype(np.float32), shrinkage, len(x))
