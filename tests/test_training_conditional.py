"""Backward Search and its distilled student on a toy model whose attributes are known (methods.md §4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.conditional import (
    ConditionError,
    backward_search,
    condition_loss,
    cosine_top,
    default_lambda,
    lambdas,
    parse_conditions,
    predict_attributes,
    train_student,
)
from training.label_models import attribute_head

DIM = 16
CLASSES = {"style": ["Baroque", "Gothic", "Rococo", "Cubism"], "genre": ["portrait", "landscape"]}


def truth(z: torch.Tensor) -> torch.Tensor:
    """The toy world: style = the largest of the first four coordinates, genre = the sign of the fifth."""
    return torch.stack([z[:, :4].argmax(dim=1), (z[:, 4] > 0).long()], dim=1)


@pytest.fixture(scope="module")
def heads():
    torch.manual_seed(0)
    heads = [attribute_head(DIM, 4), attribute_head(DIM, 2)]
    optimizer = torch.optim.Adam([p for h in heads for p in h.parameters()], lr=3e-3)
    for _ in range(400):
        z = torch.tanh(torch.randn(256, DIM))
        labels = truth(z)
        loss = sum(torch.nn.functional.cross_entropy(h(z), labels[:, t]) for t, h in enumerate(heads))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for head in heads:
        head.eval()
        head.zero_grad(set_to_none=True)
    z = torch.tanh(torch.randn(500, DIM))
    predicted = torch.stack([h(z).argmax(dim=1) for h in heads], dim=1)
    assert (predicted == truth(z)).float().mean() > 0.9  # the toy heads know the attributes
    return heads


def queries(n: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries and a style condition each does not already have."""
    generator = torch.Generator().manual_seed(seed)
    z0 = torch.tanh(torch.randn(n, DIM, generator=generator))
    own = truth(z0)[:, 0]
    wanted = (own + torch.randint(1, 4, (n,), generator=generator)) % 4
    conditions = torch.full((n, 2), -1, dtype=torch.long)
    conditions[:, 0] = wanted
    return z0, conditions


def test_the_search_meets_the_conditions_and_lowers_the_objective(heads):
    z0, conditions = queries(64)
    with torch.no_grad():
        before = condition_loss(heads, z0, z0, conditions, lambdas(conditions, None))
    result = backward_search(heads, z0, conditions)
    assert (result.loss < before).all()
    assert result.history[-1] < float(before.mean())
    style = predict_attributes(heads, result.z)[0][0]
    assert (style == conditions[:, 0].numpy()).mean() >= 0.9
    # It moved z, but not further than it had to: the other attribute mostly stays the query's.
    genre = predict_attributes(heads, result.z)[1][0]
    assert (genre == truth(z0)[:, 1].numpy()).mean() >= 0.8


def test_the_best_z_is_kept_and_is_what_its_loss_says(heads):
    z0, conditions = queries(16)
    result = backward_search(heads, z0, conditions, steps=30, patience=30)
    lam = lambdas(conditions, None)
    again = condition_loss(heads, result.z, z0, conditions, lam)
    assert torch.allclose(again, result.loss, atol=1e-5)
    # Never stopped by patience, each query's best is at most its objective at any step.
    assert float(result.loss.mean()) <= min(result.history) + 1e-6


def test_a_large_lambda_keeps_the_query_and_patience_stops_the_search(heads):
    z0, conditions = queries(8)
    result = backward_search(heads, z0, conditions, lam=1000.0, patience=3)
    # Every step away from z0 costs more than any cross-entropy it saves: the best stays z0, and the search
    # ends after `patience` steps without a better objective.
    assert torch.equal(result.z, z0)
    assert result.steps == 3


def test_a_batch_is_searched_as_each_query_alone(heads):
    z0, conditions = queries(6)
    together = backward_search(heads, z0, conditions).z
    stopped_at = set()
    for row in range(6):
        alone = backward_search(heads, z0[row : row + 1], conditions[row : row + 1])
        assert torch.allclose(alone.z[0], together[row], atol=1e-5)
        stopped_at.add(alone.steps)
    assert len(stopped_at) > 1  # the queries ran out of patience at different steps: kept apart in the batch


def test_the_heads_are_left_as_they_were(heads):
    before = [p.detach().clone() for h in heads for p in h.parameters()]
    heads[0].train()
    backward_search(heads, *queries(4))
    assert heads[0].training  # its mode restored
    heads[0].eval()
    after = [p.detach() for h in heads for p in h.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(p.grad is None for h in heads for p in h.parameters())


def test_two_conditions_use_the_papers_lambda_and_both_are_met(heads):
    assert default_lambda(1) == 1.1 and default_lambda(2) == 3.2 and default_lambda(3) == 3.2
    z0, conditions = queries(32, seed=3)
    conditions[:, 1] = 1 - truth(z0)[:, 1]
    assert lambdas(conditions, None).tolist() == pytest.approx([3.2] * 32)
    result = backward_search(heads, z0, conditions)
    predicted = np.stack([p[0] for p in predict_attributes(heads, result.z)], axis=1)
    assert (predicted == conditions.numpy()).all(axis=1).mean() >= 0.8


def test_the_student_learns_the_search(heads):
    z_train = torch.tanh(torch.randn(120, DIM, generator=torch.Generator().manual_seed(5)))
    fit = train_student(heads, [4, 2], z_train, pairs_per_query=8, epochs=40, batch_size=128)
    z0, conditions = queries(200, seed=9)
    with torch.no_grad():
        moved = fit.student(z0, conditions)
        target = backward_search(heads, z0, conditions).z
    style = predict_attributes(heads, moved)[0][0]
    met = (style == conditions[:, 0].numpy()).mean()
    assert met >= 0.6  # z0 meets none of these conditions
    # Closer to the optimisation's answer than the query it started from (not all the way: the optimised z
    # may leave tanh's range, the student's output may not).
    assert float(((moved - target) ** 2).mean()) < 0.8 * float(((z0 - target) ** 2).mean())
    assert fit.history[-1]["val_mse"] < fit.history[0]["val_mse"]
    assert moved.shape == (200, DIM)


def test_conditions_are_parsed_against_what_the_model_knows():
    assert parse_conditions(["style=baroque"], CLASSES).tolist() == [0, -1]
    assert parse_conditions({"genre": "landscape", "style": "Cubism"}, CLASSES).tolist() == [3, 1]
    cased = {"style": ["Baroque", "baroque", "Gothic"]}  # catalogue classes are case-sensitive
    assert parse_conditions(["style=baroque"], cased).tolist() == [1]
    assert parse_conditions(["style=gothic"], cased).tolist() == [2]
    with pytest.raises(ConditionError, match="names several style classes"):
        parse_conditions(["style=BAROQUE"], cased)
    for wanted, message in [
        (["style=Impressionism"], "knows no style 'Impressionism'"),
        (["school=Venetian"], "has no label 'school'"),
        (["Baroque"], "LABEL=CLASS"),
        (["style=Baroque", "style=Gothic"], "one class per label"),
        ([], "at least one condition"),
    ]:
        with pytest.raises(ConditionError, match=message):
            parse_conditions(wanted, CLASSES)
    with pytest.raises(ConditionError, match="λ"):
        lambdas(torch.tensor([[0, -1]]), float("nan"))
    with pytest.raises(ConditionError, match="at least one condition"):
        lambdas(torch.tensor([[-1, -1]]), None)


def test_cosine_top_leaves_out_the_query():
    gallery = np.eye(4, dtype=np.float32)
    rows, scores = cosine_top(np.array([1, 0.5, 0, 0]), gallery, k=2, exclude=[0])
    assert rows.tolist() == [1, 2] and scores[0] == pytest.approx(0.5 / np.sqrt(1.25))
