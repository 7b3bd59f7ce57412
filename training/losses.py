"""Metric-learning losses for fine-tuning visual signatures on known connections (methods.md, section 1).

Plain PyTorch, no Django: the training worker and the tests import this module directly.

All losses work on triplets (A, B, C) of signature batches of shape (N, D): A–B is a known visual connection
(a POSITIVE link), C a negative for it. Distances are cosine distances of the row-wise L2-normalised vectors,
always computed in float32 so that the small margins used here (m = 0.01) are not lost to bf16 rounding under
autocast.

References:
    V. Balntas, E. Riba, D. Ponsa, K. Mikolajczyk, "Learning local feature descriptors with triplets and
    shallow convolutional neural networks", BMVC 2016 (anchor swap).
    K. Ho, J. Keuper, F.-J. Pfreundt, M. Keuper, "Learning Embeddings for Image Clustering: An Empirical Study
    of Triplet Loss Approaches", ICPR 2020, published 2021 (intra-sample penalisation of positives).
    L. Schaerf, "Semi-supervised Clustering of Visual Signatures of Artworks", master thesis, EPFL 2022 (the
    compound loss and its values m = 0.01, m2 = 0.1, reduction sum).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F

Reduction = Literal["sum", "mean", "none"]
LossFunction = Callable[..., torch.Tensor]

_REDUCTIONS = ("sum", "mean", "none")


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.dim() != 2 or a.shape != b.shape:
        shapes = f"{tuple(a.shape)} and {tuple(b.shape)}"
        raise ValueError(f"expected two (N, D) tensors of the same shape, got {shapes}")


def _reduce(losses: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean":
        return losses.mean()
    if reduction == "none":
        return losses
    raise ValueError(f"unknown reduction {reduction!r}; expected one of {', '.join(_REDUCTIONS)}")


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine distance 1 − cos(a_i, b_i) of two (N, D) tensors, returned as an (N,) float32 tensor.

    Each row is L2-normalised on its own (never by the norm of the whole batch, the thesis bug). Inputs are
    cast to float32 first: under bf16 autocast a distance of order 0.01 would otherwise carry a rounding error
    comparable to the margin itself. The cast is differentiable, so gradients still reach bf16 inputs.
    """
    _check_pair(a, b)
    a32 = F.normalize(a.float(), dim=1)
    b32 = F.normalize(b.float(), dim=1)
    # Elementwise product + sum rather than a matmul: autocast never lowers these to bf16.
    return 1.0 - (a32 * b32).sum(dim=1)


def compound_hinge_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 0.01,
    positive_margin: float = 0.1,
    reduction: Reduction = "sum",
) -> torch.Tensor:
    """Triplet loss with anchor swap and intra-sample penalisation (the thesis loss, methods.md section 1).

    For each triplet (A, B, C) with cosine distance d::

        L = max(0, m + d(A,B) − min(d(A,C), d(B,C)) + max(0, d(A,B) − m2))

    * anchor swap (Balntas et al., BMVC 2016): the negative is compared with whichever of A and B it is closer
      to, i.e. the harder of the two negative distances;
    * intra-sample penalisation (Ho et al. 2021): the inner term also pulls the positive pair below m2. It
      sits INSIDE the outer hinge, as in the thesis, so it only acts on triplets not yet satisfied.

    Args:
        anchor, positive, negative: (N, D) signature batches (any float dtype, any device).
        margin: m, the triplet margin (thesis value 0.01).
        positive_margin: m2, the distance under which positive pairs are left alone (thesis value 0.1).
        reduction: "sum" (thesis), "mean" or "none" (per-triplet losses, shape (N,)).

    Returns:
        A float32 scalar, or an (N,) float32 tensor for reduction "none".
    """
    d_ab = cosine_distance(anchor, positive)
    d_ac = cosine_distance(anchor, negative)
    d_bc = cosine_distance(positive, negative)
    hardest_negative = torch.minimum(d_ac, d_bc)
    intra = torch.clamp(d_ab - positive_margin, min=0.0)
    losses = torch.clamp(margin + d_ab - hardest_negative + intra, min=0.0)
    return _reduce(losses, reduction)


def triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 0.01,
    reduction: Reduction = "sum",
) -> torch.Tensor:
    """Plain triplet margin loss max(0, m + d(A,B) − d(A,C)) with cosine distance.

    The baseline the compound loss is compared with (Replica used it with m = 0.01). Same arguments and
    return value as `compound_hinge_loss`, without the anchor swap and the positive term.
    """
    d_ab = cosine_distance(anchor, positive)
    d_ac = cosine_distance(anchor, negative)
    losses = torch.clamp(margin + d_ab - d_ac, min=0.0)
    return _reduce(losses, reduction)


def info_nce(first: torch.Tensor, second: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """Contrastive term of SSCD (Pizzi et al., "A Self-Supervised Descriptor for Image Copy Detection", CVPR
    2022): row i of `first` and row i of `second` are two augmentations of one image; every other row of
    either batch is a negative. Cross-entropy over the 2N − 1 cosine similarities / temperature, averaged
    over the 2N embeddings (NT-Xent). In float32, like the distances above.
    """
    _check_pair(first, second)
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    embeddings = F.normalize(torch.cat([first, second]).float(), dim=1)
    count = first.shape[0]
    similarities = embeddings @ embeddings.T / temperature
    similarities = similarities.masked_fill(
        torch.eye(2 * count, dtype=torch.bool, device=embeddings.device), float("-inf")
    )
    targets = torch.cat([torch.arange(count, 2 * count), torch.arange(count)]).to(embeddings.device)
    return F.cross_entropy(similarities, targets)


def koleo(embeddings: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Kozachenko–Leonenko differential-entropy regulariser of SSCD (Sablayrolles et al., "Spreading vectors
    for similarity search", ICLR 2019): −mean log of each embedding's distance to its nearest other one.
    Minimising it spreads the descriptors over the sphere, so that the distances between unrelated images
    stay informative instead of collapsing (what separates copies from look-alikes in a large gallery)."""
    if embeddings.dim() != 2 or embeddings.shape[0] < 2:
        raise ValueError(f"need an (N, D) batch with N ≥ 2, got shape {tuple(embeddings.shape)}")
    normalised = F.normalize(embeddings.float(), dim=1)
    distances = torch.cdist(normalised, normalised)
    distances = distances + torch.eye(len(normalised), device=normalised.device) * 1e6  # not itself
    return -torch.log(distances.min(dim=1).values + eps).mean()


def label_relevance(labels: torch.Tensor) -> torch.Tensor:
    """(B, B) relevance of every pair of a batch: the mean over label tasks of 1[same label] (methods.md §2:
    r = ½(1[same style] + 1[same genre]) for two tasks). `labels` is (B, T) with -1 where a label is unknown;
    a task counts for a pair only when both know it, and a pair that shares no known task gets NaN."""
    if labels.dim() == 1:
        labels = labels[:, None]
    known = labels >= 0
    both = known[:, None, :] & known[None, :, :]
    same = (labels[:, None, :] == labels[None, :, :]) & both
    counted = both.sum(dim=2).float()
    relevance = same.sum(dim=2).float() / counted.clamp(min=1)
    return relevance.masked_fill(counted == 0, float("nan"))


def knn_triplet_loss(
    descriptors: torch.Tensor, labels: torch.Tensor, k: int = 5, margin: float = 0.2
) -> torch.Tensor:
    """The kNN triplet loss of multitask fine-art retrieval (methods.md §2).

    For each anchor, its k nearest in-batch neighbours by L2 distance of the normalised descriptors; for
    every pair of them with different relevance to the anchor (`label_relevance`), p the more and n the less
    relevant, ℓ = max(0, d(a,p) − d(a,n) + m·|r_p − r_n|). L = Σℓ / (B · k(k−1)/2).

    It orders the neighbourhood the retrieval will show rather than pulling whole classes together, so it
    shapes the descriptor for every label at once; the paper's ablation finds it mostly helps the task the
    classifier heads serve worst (genre P@1 64.6 → 77.2). Choosing the neighbours is not differentiated; the
    distances are. In float32 for the small margins under autocast. A batch of fewer than 3 gives 0.
    """
    if descriptors.dim() != 2:
        raise ValueError(f"expected (B, D) descriptors, got shape {tuple(descriptors.shape)}")
    if k < 2:
        raise ValueError(f"k must be at least 2 (pairs of neighbours), got {k}")
    if margin < 0:
        raise ValueError(f"margin must not be negative, got {margin}")
    batch = descriptors.shape[0]
    k = min(k, batch - 1)
    if k < 2:
        return descriptors.sum() * 0.0
    normalised = F.normalize(descriptors.float(), dim=1)
    distances = torch.cdist(normalised, normalised)
    relevance = label_relevance(labels.to(descriptors.device))
    with torch.no_grad():
        masked = distances.detach() + torch.eye(batch, device=distances.device) * 1e6  # never itself
        neighbours = masked.topk(k, dim=1, largest=False).indices  # (B, k)
    d = distances.gather(1, neighbours)  # (B, k)
    r = relevance.gather(1, neighbours)  # (B, k)
    # Every ordered pair (i, j) of neighbours with r_i > r_j: i plays p, j plays n. NaN compares false.
    more_relevant = r[:, :, None] > r[:, None, :]
    gap = (r[:, :, None] - r[:, None, :]).nan_to_num(0.0)
    hinge = torch.clamp(d[:, :, None] - d[:, None, :] + margin * gap, min=0.0)
    return (hinge * more_relevant).sum() / (batch * k * (k - 1) / 2)


LOSSES: dict[str, LossFunction] = {
    "compound_hinge": compound_hinge_loss,
    "triplet": triplet_loss,
}


def make_loss(name: str, **params: float | str) -> LossFunction:
    """The loss called `name` with its hyperparameters bound: ``make_loss("compound_hinge", margin=0.02)``.

    Checked up front rather than at the first training step, so that a bad job configuration fails when it
    is submitted: unknown loss names, unknown parameters, negative margins and unknown reductions raise
    ValueError.
    The result is called as ``loss(anchor, positive, negative)``.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known losses: {', '.join(sorted(LOSSES))}")
    function = LOSSES[name]
    # The tensors are passed at call time; only the keyword hyperparameters may be bound here.
    tensors = ("anchor", "positive", "negative")
    allowed = [p for p in inspect.signature(function).parameters if p not in tensors]
    for key, value in params.items():
        if key not in allowed:
            raise ValueError(f"loss {name!r} has no parameter {key!r}; its parameters: {', '.join(allowed)}")
        if key.endswith("margin"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number, got {value!r}")
            if value < 0:
                raise ValueError(f"{key} must not be negative, got {value}")
        if key == "reduction" and value not in _REDUCTIONS:
            raise ValueError(f"unknown reduction {value!r}; expected one of {', '.join(_REDUCTIONS)}")
    return partial(function, **params)
