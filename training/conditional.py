"""Conditional retrieval, "like this one, but Baroque": Backward Search and its distilled student (plain
module, no Django; methods.md §4).

A `backward-search` model (`label_models.LabelModel`) maps an image to z (256-d, tanh) and has one attribute
classifier per label task on z. To find artworks like a query but with wanted classes, Backward Search starts
from the query's z0 and optimises z alone, the model fixed, to minimise

    (1/M) · Σ_m CE(h_m(z), c_m) + λ · mean|z − z0|

over the M wanted conditions (Adam, lr 0.2, at most 100 steps, the best z kept, patience 10), then retrieves
by cosine on z. The first term moves z to where the heads see the wanted classes; the second keeps it near
the query, so the hits keep the query's other traits. λ per number of conditions as in the paper: 1.1 for
one (WikiArt style), 3.2 for two (style + genre).

The distilled student does the same in one forward pass: [z0 ; one-hot conditions] → Linear 128 → sigmoid →
BN → Linear 128 → sigmoid → BN → Linear 256 → tanh, trained by mean squared error to the optimisation's
result on random (query, conditions) pairs (Adam 1e-3, batch 512, about 50 epochs).

Conditions are a (B, T) integer array: the wanted class of each label task, −1 where a task is not
constrained. Every function works on a batch of queries at once: Adam's update is elementwise and the
queries' losses are summed, so optimising a batch is the same as optimising each query alone (the best z and
the patience are kept per query).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .signature_store import top_rows

# methods.md §4: λ for one condition (WikiArt style) and two (style + genre); more conditions keep the
# two-condition value.
DEFAULT_LAMBDA = {1: 1.1, 2: 3.2}
SEARCH_LR = 0.2
SEARCH_STEPS = 100
SEARCH_PATIENCE = 10


class ConditionError(ValueError):
    """A condition the model cannot search for (unknown label task or class, nothing asked)."""


def default_lambda(n_conditions: int) -> float:
    if n_conditions < 1:
        raise ConditionError("name at least one condition")
    return DEFAULT_LAMBDA.get(n_conditions, DEFAULT_LAMBDA[max(DEFAULT_LAMBDA)])


def parse_conditions(
    wanted: Sequence[str] | Mapping[str, str], classes: Mapping[str, Sequence[str]]
) -> np.ndarray:
    """`["style=Baroque", "genre=portrait"]` (or a {task: class} mapping) as a (T,) condition row in the
    order of `classes` (the model's label tasks and their class names). Class names match case-insensitively;
    an unknown task or class raises ConditionError naming what the model knows."""
    pairs: list[tuple[str, str]] = []
    if isinstance(wanted, Mapping):
        pairs = [(str(task), str(value)) for task, value in wanted.items() if str(value).strip()]
    else:
        for item in wanted:
            task, sep, value = str(item).partition("=")
            if not sep or not task.strip() or not value.strip():
                raise ConditionError(
                    f"a condition is LABEL=CLASS (e.g. style=Baroque), not {str(item)[:80]!r}"
                )
            pairs.append((task.strip(), value.strip()))
    if not pairs:
        raise ConditionError("name at least one condition (LABEL=CLASS)")
    tasks = list(classes)
    row = np.full(len(tasks), -1, dtype=np.int64)
    for task, value in pairs:
        if task not in classes:
            raise ConditionError(
                f"the model has no label {task[:80]!r}; its labels: {', '.join(tasks) or 'none'}"
            )
        names = list(classes[task])
        # Exactly as written first: catalogue classes are case-sensitive ("Baroque" and "baroque" may both
        # be classes); otherwise ignoring case, when that names one class.
        matches = [i for i, name in enumerate(names) if name == value] or [
            i for i, name in enumerate(names) if name.casefold() == value.casefold()
        ]
        if not matches:
            shown = ", ".join(names[:12]) + (f" … ({len(names)} in all)" if len(names) > 12 else "")
            raise ConditionError(f"the model knows no {task} {value[:80]!r}; its {task} classes: {shown}")
        if len(matches) > 1:
            raise ConditionError(
                f"{value!r} names several {task} classes ({', '.join(names[i] for i in matches)}): "
                "write it as the class is written"
            )
        index = tasks.index(task)
        if row[index] >= 0:
            raise ConditionError(f"two conditions on {task}: give one class per label")
        row[index] = matches[0]
    return row


def condition_loss(
    heads: Sequence[nn.Module], z: torch.Tensor, z0: torch.Tensor, conditions: torch.Tensor, lam: torch.Tensor
) -> torch.Tensor:
    """Per-query objective (B,): mean over the constrained tasks of the heads' cross-entropy with the wanted
    class, plus λ · mean|z − z0|."""
    ce = torch.zeros(len(z), device=z.device)
    count = torch.zeros(len(z), device=z.device)
    for task, head in enumerate(heads):
        wanted = conditions[:, task]
        constrained = wanted >= 0
        if not bool(constrained.any()):
            continue
        logits = head(z).float()
        losses = F.cross_entropy(logits, wanted.clamp(min=0), reduction="none")
        ce = ce + torch.where(constrained, losses, torch.zeros_like(losses))
        count = count + constrained.float()
    return ce / count.clamp(min=1) + lam * (z - z0).abs().mean(dim=1)


@dataclass
class SearchResult:
    z: torch.Tensor  # (B, D): the best z of each query
    loss: torch.Tensor  # (B,): its objective
    steps: int  # optimisation steps run (the batch stops when every query ran out of patience)
    history: list[float] = field(default_factory=list)  # mean objective of z after each step


def heads_of(model: nn.Module) -> Sequence[nn.Module]:
    heads = getattr(model, "heads", None)
    if not heads:
        raise ConditionError(
            "this model has no attribute heads: conditional search needs a backward-search model"
        )
    return heads


def lambdas(conditions: torch.Tensor, lam: float | None) -> torch.Tensor:
    """λ of each query: the given one, or the paper's for its number of conditions."""
    counts = (conditions >= 0).sum(dim=1)
    if bool((counts == 0).any()):
        raise ConditionError("every query needs at least one condition")
    if lam is not None:
        if not math.isfinite(lam) or lam < 0:
            raise ConditionError(f"λ must be a finite number ≥ 0, not {lam}")
        return torch.full((len(conditions),), float(lam), device=conditions.device)
    return torch.tensor([default_lambda(int(c)) for c in counts.tolist()], device=conditions.device)


def backward_search(
    heads: Sequence[nn.Module],
    z0: torch.Tensor,
    conditions: torch.Tensor,
    lam: float | None = None,
    lr: float = SEARCH_LR,
    steps: int = SEARCH_STEPS,
    patience: int = SEARCH_PATIENCE,
) -> SearchResult:
    """Optimise z from z0 (B, D) towards `conditions` (B, T); the heads are used in eval mode and not
    changed. The best z of each query is kept; a query stops improving its best after `patience` steps
    without a better objective, and the batch ends when every query has."""
    if steps < 1 or patience < 1 or lr <= 0:
        raise ConditionError("steps and patience must be at least 1 and the learning rate positive")
    modes = [head.training for head in heads]
    for head in heads:
        head.eval()
    z0 = z0.detach().float()
    conditions = conditions.to(z0.device).long()
    lam_t = lambdas(conditions, lam)
    z = z0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    best_loss = torch.full((len(z0),), math.inf, device=z0.device)
    best_z = z0.clone()
    waited = torch.zeros(len(z0), dtype=torch.long, device=z0.device)
    history: list[float] = []
    steps_run = 0

    def keep_best(current: torch.Tensor, candidate: torch.Tensor) -> None:
        """Per query: a better objective is kept and resets its patience; else one more step waited. A
        query out of patience keeps its best from then on."""
        nonlocal best_loss, waited
        active = waited < patience
        better = (current < best_loss) & active
        best_loss = torch.where(better, current, best_loss)
        best_z[better] = candidate[better]
        waited = torch.where(better, torch.zeros_like(waited), waited + active.long())

    try:
        # Callers may be inside torch.no_grad() (a view, inference code): z needs its gradient.
        with torch.enable_grad():
            for _ in range(steps):
                # The objective of the current z is computed once, for its gradient and to keep the best
                # (z0's at the first step): one forward and backward pass of the heads per step.
                loss = condition_loss(heads, z, z0, conditions, lam_t)
                with torch.no_grad():
                    keep_best(loss.detach(), z.detach())
                    if steps_run:
                        history.append(float(loss.detach().mean()))
                if not bool((waited < patience).any()):
                    break
                (grad,) = torch.autograd.grad(loss.sum(), z)  # the heads' parameters get no gradient
                z.grad = grad
                optimizer.step()
                steps_run += 1
            else:
                with torch.no_grad():  # the last step's result
                    final = condition_loss(heads, z, z0, conditions, lam_t)
                    keep_best(final, z.detach())
                    history.append(float(final.mean()))
    finally:
        for head, mode in zip(heads, modes, strict=True):
            head.train(mode)
    return SearchResult(best_z.detach(), best_loss.detach(), steps_run, history)


class ConditionalStudent(nn.Module):
    """[z0 ; one-hot conditions] → Linear 128 → sigmoid → BN → Linear 128 → sigmoid → BN → Linear D → tanh
    (methods.md §4): Backward Search's result in one forward pass."""

    def __init__(self, dim: int, n_classes: Sequence[int], hidden: int = 128) -> None:
        super().__init__()
        self.dim, self.n_classes = dim, list(n_classes)
        self.net = nn.Sequential(
            nn.Linear(dim + sum(self.n_classes), hidden),
            nn.Sigmoid(),
            nn.BatchNorm1d(hidden),
            nn.Linear(hidden, hidden),
            nn.Sigmoid(),
            nn.BatchNorm1d(hidden),
            nn.Linear(hidden, dim),
            nn.Tanh(),
        )

    def encode(self, z0: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        parts = [z0.float()]
        for task, n in enumerate(self.n_classes):
            wanted = conditions[:, task].to(z0.device)
            one_hot = F.one_hot(wanted.clamp(min=0), n).float()
            parts.append(one_hot * (wanted >= 0).float().unsqueeze(1))  # an unconstrained task: all zeros
        return torch.cat(parts, dim=1)

    def forward(self, z0: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return self.net(self.encode(z0, conditions))


def random_conditions(
    n_pairs: int, n_classes: Sequence[int], rng: np.random.Generator, max_conditions: int = 2
) -> np.ndarray:
    """(n_pairs, T) random conditions: one to `max_conditions` constrained tasks per pair (as many pairs with
    each count), each a class drawn uniformly."""
    tasks = len(n_classes)
    most = max(1, min(max_conditions, tasks))
    rows = np.full((n_pairs, tasks), -1, dtype=np.int64)
    for pair in range(n_pairs):
        count = 1 + pair % most
        for task in rng.choice(tasks, size=count, replace=False):
            rows[pair, task] = rng.integers(n_classes[task])
    return rows


@dataclass
class StudentFit:
    student: ConditionalStudent
    history: list[dict]
    best_epoch: int
    val_mse: float
    teacher_seconds: float  # the optimisation of every pair (the training targets)
    seconds: float


def distillation_targets(
    heads: Sequence[nn.Module],
    z0: torch.Tensor,
    conditions: torch.Tensor,
    lam: float | None = None,
    batch: int = 4096,
    progress: Callable[[float, str], None] = lambda fraction, message: None,
) -> torch.Tensor:
    """Backward Search's result for every (query, conditions) pair, in batches."""
    out = torch.empty_like(z0)
    for start in range(0, len(z0), batch):
        end = min(start + batch, len(z0))
        out[start:end] = backward_search(heads, z0[start:end], conditions[start:end], lam).z
        progress(end / len(z0), f"optimising the training pairs: {end}/{len(z0)}")
    return out


def train_student(
    heads: Sequence[nn.Module],
    n_classes: Sequence[int],
    z_train: torch.Tensor,
    pairs_per_query: int = 8,
    epochs: int = 50,
    batch_size: int = 512,
    lr: float = 1e-3,
    lam: float | None = None,
    max_conditions: int = 2,
    seed: int = 0,
    progress: Callable[[float, str], None] = lambda fraction, message: None,
    should_stop: Callable[[], None] = lambda: None,
) -> StudentFit:
    """Distil Backward Search into a `ConditionalStudent`: random (query, conditions) pairs of the train
    split's z (`pairs_per_query` each), their optimised z as targets, MSE (methods.md §4). A tenth of the
    queries (all their pairs) are held out to pick the best epoch."""
    started = time.monotonic()
    torch.manual_seed(seed)
    random.seed(seed)
    rng = np.random.default_rng(seed)
    n_queries = len(z_train)
    if n_queries < 4:
        raise ValueError(f"too few training queries to distil the search ({n_queries})")
    queries = np.repeat(np.arange(n_queries), pairs_per_query)
    conditions = torch.from_numpy(random_conditions(len(queries), n_classes, rng, max_conditions))
    z0 = z_train[torch.from_numpy(queries)].float()
    targets = distillation_targets(heads, z0, conditions, lam, progress=lambda f, m: progress(0.5 * f, m))
    teacher_seconds = time.monotonic() - started
    held_out = rng.permutation(n_queries)[: max(1, n_queries // 10)]
    is_val = torch.from_numpy(np.isin(queries, held_out))
    train_rows, val_rows = torch.nonzero(~is_val).squeeze(1), torch.nonzero(is_val).squeeze(1)
    student = ConditionalStudent(z0.shape[1], n_classes)
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    best_state, best_mse, best_epoch, history = None, math.inf, 0, []
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(1, epochs + 1):
        should_stop()
        student.train()
        order = train_rows[torch.randperm(len(train_rows), generator=generator)]
        total = 0.0
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            if len(rows) < 2:  # BatchNorm needs two
                continue
            loss = F.mse_loss(student(z0[rows], conditions[rows]), targets[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        student.eval()
        with torch.no_grad():
            val_mse = float(F.mse_loss(student(z0[val_rows], conditions[val_rows]), targets[val_rows]))
        history.append({"epoch": epoch, "train_mse": total / max(len(order), 1), "val_mse": val_mse})
        if val_mse < best_mse:
            best_mse, best_epoch = val_mse, epoch
            best_state = {k: v.detach().clone() for k, v in student.state_dict().items()}
        progress(0.5 + 0.5 * epoch / epochs, f"student epoch {epoch}/{epochs}: val MSE {val_mse:.5f}")
    assert best_state is not None
    student.load_state_dict(best_state)
    student.eval()
    return StudentFit(student, history, best_epoch, best_mse, teacher_seconds, time.monotonic() - started)


@torch.no_grad()
def predict_attributes(heads: Sequence[nn.Module], z: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each head's predicted class and its probability for every row of z (heads in eval mode)."""
    modes = [head.training for head in heads]
    out = []
    try:
        for head in heads:
            head.eval()
            probabilities = torch.softmax(head(z.float()).float(), dim=1)
            top, index = probabilities.max(dim=1)
            out.append((index.cpu().numpy(), top.cpu().numpy()))
    finally:
        for head, mode in zip(heads, modes, strict=True):
            head.train(mode)
    return out


def cosine_top(
    query: np.ndarray, gallery: np.ndarray, k: int, exclude: Sequence[int] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the k gallery vectors (L2-normalised) nearest to `query` by cosine, best first, `exclude`d rows
    left out, with their similarities."""
    query = np.asarray(query, dtype=np.float32)
    scores = gallery @ (query / max(float(np.linalg.norm(query)), 1e-12))
    top = np.array(top_rows(scores, k, {int(row) for row in exclude}), dtype=np.int64)
    return top, scores[top]
