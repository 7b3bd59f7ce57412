"""The triplet losses against hand-computed values on 2-D vectors (no Django, no database).

Vectors come from Pythagorean triples so that every cosine is a simple fraction:
    x = (1, 0), p = (4, 3)/5, q = (3, 4)/5, y = (0, 1), r = (5, 12)/13, s = (4, -3)/5
    cos(x, p) = 4/5      cos(x, q) = 3/5      cos(p, q) = 24/25    cos(x, s) = 4/5     cos(p, s) = 7/25
    cos(p, r) = 56/65    cos(q, r) = 63/65
The vectors are passed unnormalised (e.g. (4, 3) rather than (0.8, 0.6)) to check the per-row normalisation.
"""

from __future__ import annotations

import math

import pytest
import torch

from training.losses import LOSSES, compound_hinge_loss, cosine_distance, make_loss, triplet_loss

M, M2 = 0.01, 0.1


def rows(*vectors: tuple[float, float]) -> torch.Tensor:
    return torch.tensor(vectors, dtype=torch.float32)


# Triplets (A, B, C) with their hand-computed compound loss (m = 0.01, m2 = 0.1).
# 1. Easy: A = B = x, C = y. d(A,B) = 0, d(A,C) = d(B,C) = 1.
#    L = max(0, 0.01 + 0 - 1 + 0) = 0.
EASY = ((1, 0), (2, 0), (0, 3), 0.0)
# 2. Swap: A = p, B = q, C = r. d(A,B) = 1/25 = 0.04, d(A,C) = 9/65, d(B,C) = 2/65 (C is nearer B).
#    min = 2/65; inner max(0, 0.04 - 0.1) = 0; L = 0.01 + 0.04 - 2/65 = 0.05 - 2/65 ≈ 0.0192308.
#    (Plain triplet with A as the only anchor: 0.01 + 0.04 - 9/65 < 0, so 0.)
SWAP = ((4, 3), (3, 4), (5, 12), 0.05 - 2 / 65)
# 3. Inner term: A = x, B = p, C = s (mirror of B about A). d(A,B) = 1/5, d(A,C) = 1/5, d(B,C) = 18/25.
#    min = 1/5 (no swap); inner max(0, 0.2 - 0.1) = 0.1; L = 0.01 + 0.2 - 0.2 + 0.1 = 0.11.
#    (Plain triplet: 0.01 + 0.2 - 0.2 = 0.01.)
INNER = ((1, 0), (4, 3), (4, -3), 0.11)
# 4. Inner term stays inside the outer hinge: A = x, B = p, C = -x. d(A,B) = 0.2, d(A,C) = 2, d(B,C) = 9/5.
#    L = max(0, 0.01 + 0.2 - 1.8 + max(0, 0.2 - 0.1)) = max(0, -1.49) = 0
#    (with the inner term outside the outer max it would be 0.1).
OUTSIDE = ((1, 0), (4, 3), (-1, 0), 0.0)
# 5. Swap and inner term together: A = (1, 0), B at 60°, C at 120°. d(A,B) = 1 - 1/2 = 0.5,
#    d(A,C) = 1 + 1/2 = 1.5, d(B,C) = 0.5. L = 0.01 + 0.5 - 0.5 + max(0, 0.5 - 0.1) = 0.41.
BOTH = ((1, 0), (0.5, math.sqrt(3) / 2), (-0.5, math.sqrt(3) / 2), 0.41)

CASES = [EASY, SWAP, INNER, OUTSIDE, BOTH]


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    a, b, c, expected = zip(*CASES, strict=True)
    return rows(*a), rows(*b), rows(*c), torch.tensor(expected)


def test_cosine_distance_is_one_minus_cosine_per_row() -> None:
    # d(x, p) = 1 - 4/5; d(x, y) = 1 - 0; d(x, -x) = 1 - (-1); scale does not matter.
    a = rows((1, 0), (1, 0), (3, 0))
    b = rows((4, 3), (0, 7), (-2, 0))
    assert torch.allclose(cosine_distance(a, b), torch.tensor([0.2, 1.0, 2.0]), atol=1e-6)


def test_cosine_distance_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError):
        cosine_distance(torch.zeros(3, 2), torch.zeros(2, 2))


@pytest.mark.parametrize("case", CASES, ids=["easy", "swap", "inner", "inner-inside", "swap-and-inner"])
def test_compound_loss_matches_hand_computation(case: tuple) -> None:
    a, b, c, expected = case
    loss = compound_hinge_loss(rows(a), rows(b), rows(c), margin=M, positive_margin=M2)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_swap_is_what_makes_the_swap_triplet_active() -> None:
    # Same triplet as SWAP: with A as the only anchor, plain triplet sees d(A,C) = 9/65 and is satisfied.
    a, b, c, _ = SWAP
    assert triplet_loss(rows(a), rows(b), rows(c), margin=M).item() == 0.0


def test_plain_triplet_loss() -> None:
    # INNER: 0.01 + d(A,B) - d(A,C) = 0.01 + 0.2 - 0.2 = 0.01; BOTH: 0.01 + 0.5 - 1.5 < 0 -> 0.
    a, b, c, _ = INNER
    assert triplet_loss(rows(a), rows(b), rows(c)).item() == pytest.approx(0.01, abs=1e-6)
    a, b, c, _ = BOTH
    assert triplet_loss(rows(a), rows(b), rows(c)).item() == 0.0


def test_reductions() -> None:
    a, b, c, expected = batch()
    per_triplet = compound_hinge_loss(a, b, c, reduction="none")
    assert per_triplet.shape == (len(CASES),)
    assert torch.allclose(per_triplet, expected, atol=1e-6)
    # Sum (the thesis default): 0 + 0.0192308 + 0.11 + 0 + 0.41 = 0.5392308; mean = sum / 5.
    total = 0.05 - 2 / 65 + 0.11 + 0.41
    assert compound_hinge_loss(a, b, c).item() == pytest.approx(total, abs=1e-5)
    assert compound_hinge_loss(a, b, c, reduction="mean").item() == pytest.approx(total / 5, abs=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        compound_hinge_loss(a, b, c, reduction="max")


def test_gradients_flow_where_the_loss_is_active_only() -> None:
    a, b, c, _ = batch()
    for tensor in (a, b, c):
        tensor.requires_grad_(True)
    compound_hinge_loss(a, b, c).backward()
    active = torch.tensor([expected > 0 for *_, expected in CASES])
    for tensor in (a, b, c):
        assert torch.isfinite(tensor.grad).all()
        # A satisfied triplet contributes nothing; an active one moves its anchor and positive.
        assert (tensor.grad[~active] == 0).all()
    assert (a.grad[active].abs().sum(dim=1) > 0).all()
    assert (b.grad[active].abs().sum(dim=1) > 0).all()


def test_bf16_autocast_on_cpu_matches_float32() -> None:
    generator = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(32, 16)
    inputs = [torch.randn(8, 32, generator=generator) for _ in range(3)]
    reference = compound_hinge_loss(*(layer(x) for x in inputs), margin=0.5, positive_margin=0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        embeddings = [layer(x) for x in inputs]
        assert embeddings[0].dtype == torch.bfloat16
        loss = compound_hinge_loss(*embeddings, margin=0.5, positive_margin=0.5)
    # Distances are computed in float32 even from bf16 embeddings; only the embeddings' rounding differs.
    assert loss.dtype == torch.float32
    assert reference.item() > 0
    assert loss.item() == pytest.approx(reference.item(), rel=2e-2)
    # Given the same bf16 values, the float32 path is exact.
    bf16 = [e.detach() for e in embeddings]
    assert compound_hinge_loss(*bf16).item() == compound_hinge_loss(*(e.float() for e in bf16)).item()


# Every device present runs this (CUDA on a GPU machine); no test skips itself on a CPU-only CI.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_on_each_device_matches_hand_computed_values(device: str) -> None:
    a, b, c, expected = batch()
    with torch.autocast(device, dtype=torch.bfloat16):
        result = compound_hinge_loss(a.to(device), b.to(device), c.to(device), reduction="none")
    assert result.dtype == torch.float32
    assert torch.allclose(result.cpu(), expected, atol=1e-6)


def test_make_loss_binds_parameters() -> None:
    a, b, c, _ = batch()
    loss = make_loss("compound_hinge", margin=0.02, positive_margin=0.2, reduction="none")
    assert torch.equal(loss(a, b, c), compound_hinge_loss(a, b, c, 0.02, 0.2, "none"))
    assert make_loss("triplet")(a, b, c).item() == triplet_loss(a, b, c).item()
    assert set(LOSSES) == {"compound_hinge", "triplet"}


def test_make_loss_refuses_unknown_names_and_parameters() -> None:
    with pytest.raises(ValueError, match="known losses: compound_hinge, triplet"):
        make_loss("contrastive")
    with pytest.raises(ValueError, match="positive_margin"):
        make_loss("triplet", positive_margin=0.1)
    with pytest.raises(ValueError, match="reduction"):
        make_loss("triplet", reduction="avg")


@pytest.mark.parametrize("params", [{"margin": -0.01}, {"positive_margin": -1}])
def test_make_loss_refuses_negative_margins(params: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        make_loss("compound_hinge", **params)


def test_info_nce_against_a_hand_computed_value() -> None:
    """Four orthogonal images, each with an identical second view: the positive has similarity 1/τ, the
    2N − 2 = 6 other embeddings 0, so every row's loss is −log(e^(1/τ) / (e^(1/τ) + 6))."""
    from training.losses import info_nce

    views = torch.eye(4, 8)
    temperature = 0.5
    expected = -math.log(math.exp(1 / temperature) / (math.exp(1 / temperature) + 6))
    assert float(info_nce(views, views.clone(), temperature)) == pytest.approx(expected, rel=1e-5)
    # Views that agree less cost more.
    assert float(info_nce(views, torch.roll(views, 1, dims=0), temperature)) > expected
    with pytest.raises(ValueError, match="temperature"):
        info_nce(views, views, 0.0)


def test_koleo_is_minus_the_log_of_the_nearest_distance() -> None:
    from training.losses import koleo

    # Unit vectors at 0°, 90°, 180°: every point's nearest other point is at distance √2.
    points = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert float(koleo(points)) == pytest.approx(-math.log(math.sqrt(2)), rel=1e-5)
    crowded = torch.tensor([[1.0, 0.0], [0.99, 0.14], [-1.0, 0.0]])
    assert float(koleo(crowded)) > float(
        koleo(points)
    )  # two points close together: higher, to be pushed apart
    with pytest.raises(ValueError, match="N ≥ 2"):
        koleo(points[:1])
