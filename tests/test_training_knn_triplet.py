"""The kNN triplet loss of the multitask model (methods.md §2) on cases computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from training.losses import knn_triplet_loss, label_relevance


def unit(angle: float) -> list[float]:
    return [math.cos(angle), math.sin(angle)]


def chord(a: float, b: float) -> float:
    """L2 distance of two unit vectors at angles a and b."""
    return 2 * abs(math.sin((a - b) / 2))


def test_relevance_is_the_share_of_known_labels_in_common():
    labels = torch.tensor([[0, 0], [0, 1], [1, 1], [0, -1], [-1, -1]])
    r = label_relevance(labels)
    assert r[0, 1].item() == 0.5  # same style, other genre
    assert r[0, 2].item() == 0.0
    assert r[1, 2].item() == 0.5
    assert r[0, 3].item() == 1.0  # only style known for row 3: it agrees
    assert r[2, 3].item() == 0.0
    assert math.isnan(r[0, 4].item())  # nothing known in common


def test_one_task_a_relevant_far_neighbour_and_an_irrelevant_close_one():
    # Anchor 0 and row 1 share the label but sit 90° apart; row 2 (other label) is 0.3 rad from 0.
    angles = [0.0, math.pi / 2, 0.3]
    x = torch.tensor([unit(a) for a in angles], requires_grad=True)
    labels = torch.tensor([0, 0, 1])
    loss = knn_triplet_loss(x, labels, k=2, margin=0.2)
    # Anchor 0: p = 1, n = 2. Anchor 1: p = 0, n = 2. Anchor 2: both neighbours irrelevant, no pair.
    expected = max(0.0, chord(0, math.pi / 2) - chord(0, 0.3) + 0.2)
    expected += max(0.0, chord(math.pi / 2, 0) - chord(math.pi / 2, 0.3) + 0.2)
    assert loss.item() == pytest.approx(expected / (3 * 1), rel=1e-5)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_two_tasks_give_half_margins_and_the_loss_is_zero_once_the_order_is_right():
    # Anchor a (style 0, genre 0); b shares both labels, c only the style, d nothing.
    labels = torch.tensor([[0, 0], [0, 0], [0, 1], [1, 1]])
    # Ordered as they should be, each gap wider than its margin: b closest, then c, then d.
    good = torch.tensor([unit(0.0), unit(0.1), unit(0.5), unit(1.2)])
    k = 3
    # Anchor 0 sees b, c, d: pairs (b,c) r 1 vs .5, (b,d) 1 vs 0, (c,d) .5 vs 0, all satisfied by margin.
    loss_anchor0 = sum(
        max(0.0, chord(0, p) - chord(0, n) + 0.2 * gap)
        for p, n, gap in ((0.1, 0.5, 0.5), (0.1, 1.2, 1.0), (0.5, 1.2, 0.5))
    )
    assert loss_anchor0 == 0.0
    # Swap b and d: now every pair of anchor 0 is violated.
    bad = torch.tensor([unit(0.0), unit(1.2), unit(0.5), unit(0.1)])
    loss = knn_triplet_loss(bad, labels, k=k, margin=0.2)
    expected0 = sum(
        max(0.0, chord(0, p) - chord(0, n) + 0.2 * gap)
        for p, n, gap in ((1.2, 0.5, 0.5), (1.2, 0.1, 1.0), (0.5, 0.1, 0.5))
    )
    # The other anchors, computed the same way from the definition.
    angles = [0.0, 1.2, 0.5, 0.1]
    r = label_relevance(labels)
    total = 0.0
    for a in range(4):
        others = [o for o in range(4) if o != a]
        for i in others:
            for j in others:
                if r[a, i] > r[a, j]:
                    gap = float(r[a, i] - r[a, j])
                    total += max(0.0, chord(angles[a], angles[i]) - chord(angles[a], angles[j]) + 0.2 * gap)
    assert expected0 > 0
    assert loss.item() == pytest.approx(total / (4 * k * (k - 1) / 2), rel=1e-5)
    assert knn_triplet_loss(good, labels, k=1 + 2, margin=0.2).item() < loss.item()


def relevance(labels: torch.Tensor, a: int, o: int) -> float | None:
    both = [
        (la, lo) for la, lo in zip(labels[a].tolist(), labels[o].tolist(), strict=True) if la >= 0 and lo >= 0
    ]
    return None if not both else sum(la == lo for la, lo in both) / len(both)


def reference(x: torch.Tensor, labels: torch.Tensor, k: int, margin: float) -> float:
    """The definition, loop by loop: each anchor's k nearest others, every pair of them by relevance."""
    x = torch.nn.functional.normalize(x.double(), dim=1)
    labels = labels if labels.dim() == 2 else labels[:, None]
    batch, total = len(x), 0.0
    for a in range(batch):
        distances = sorted((float((x[a] - x[o]).norm()), o) for o in range(batch) if o != a)[:k]

        for d_p, p in distances:
            for d_n, n in distances:
                r_p, r_n = relevance(labels, a, p), relevance(labels, a, n)
                if r_p is not None and r_n is not None and r_p > r_n:
                    total += max(0.0, d_p - d_n + margin * (r_p - r_n))
    return total / (batch * k * (k - 1) / 2)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_matches_the_definition_on_random_batches(k):
    generator = torch.Generator().manual_seed(k)
    x = torch.randn(12, 6, generator=generator)
    labels = torch.randint(-1, 3, (12, 2), generator=generator)
    assert knn_triplet_loss(x, labels, k=k, margin=0.2).item() == pytest.approx(
        reference(x, labels, k, 0.2), rel=1e-5
    )


def test_unknown_labels_make_no_pairs_and_tiny_batches_give_zero():
    x = torch.tensor([unit(0.0), unit(0.2), unit(1.0)], requires_grad=True)
    assert knn_triplet_loss(x, torch.tensor([-1, -1, -1]), k=2).item() == 0.0
    assert knn_triplet_loss(x[:2], torch.tensor([0, 1]), k=5).item() == 0.0
    with pytest.raises(ValueError, match="k must be at least 2"):
        knn_triplet_loss(x, torch.tensor([0, 0, 1]), k=1)
