"""Training the label-supervised signature models (plain module, no Django).

Shaped like `trainer` (torchvision's classification references): `train_one_epoch`, `evaluate`, `fit`;
checkpoints carry their config and the loop resumes from the last one; progress goes through a callback,
which is also where a cancelled job stops (it raises).

Two recipes:

- `style-classifier` (methods.md §3): stage 1 trains the head on a frozen backbone (Adam 1e-3, 5 epochs);
  stage 2 unfreezes the top of the backbone (Adam 1e-4, early stopping with patience 10 on validation
  accuracy, learning rate halved after 3 epochs without improvement). Cross-entropy.
- `multitask-knn` (methods.md §2): one cross-entropy per label task with label smoothing 0.1, weight 1 each,
  plus 5 × the kNN triplet loss (k = 5, m = 0.2); AdamW with weight decay 0.05, layer-wise learning-rate
  decay 0.75, linear warm-up then cosine to 1e-6. Best epoch by validation P@1 (mean over the tasks).
- `backward-search` (methods.md §4): a projection to z and one MLP head per label task; mean cross-entropy
  over the tasks; Adam 0.01 with weight decay 1e-6 for the projection and heads (the trunk's learning
  stages at `lr`, 1e-4: 0.01 would wreck pretrained weights), × 0.1 every 10 epochs, 30 epochs, batch 64.
  Best epoch by validation accuracy (mean over the tasks): the search moves z until the heads agree.

One preprocessing for training and extraction: the extraction's resize-and-pad to a square with the
backbone's normalisation (`extraction.eval_transform`); augmentation, when on, is applied after it. The
National Gallery of Art code trained and extracted with different preprocessing (methods.md §3), which
shifts every signature away from what the heads learned.

Without augmentation, the frozen lower stages of a CNN give the same output every epoch, so it is computed
once and kept (in bfloat16): an epoch then costs only the stages that learn. That is what makes these
models trainable on a 2-core CPU; with augmentation, every step runs the whole trunk.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision import transforms

from jobs.progress import ProgressCallback, no_progress

from .backbones import input_normalisation
from .extraction import (
    ResizePad,
    effective_num_workers,
    eval_transform,
    extract_signatures,
    load_rgb,
    pick_device,
)
from .label_models import LabelModel, build_label_model, freeze_below, layer_ids, set_train_mode
from .labels import LabelPrecision, LabelTask, label_precision
from .losses import knn_triplet_loss
from .trainer import atomic_torch_save, autocast_for, config_key


@dataclass
class LabelTrainConfig:
    method: str = "style-classifier"
    labels: list[str] = field(default_factory=lambda: ["style"])
    backbone: str = "tf_efficientnet_lite0"
    # "pretrained": refuse to train when no pretrained weights are found (a label model fine-tuned from
    # random weights on a few thousand paintings is not worth registering); "none" for tests.
    weights: str = "pretrained"
    weights_file: str | None = None
    input_size: int = 224
    # None: 64 for backward-search (methods.md §4), 32 otherwise.
    batch_size: int | None = None
    # Stage 2 of the classifier, or the multitask run: at most this many epochs (early stopping may end
    # the classifier's sooner). None: 30 for backward-search (methods.md §4), 50 otherwise.
    epochs: int | None = None
    # "standard": flip and a mild random resized crop of the padded square; "none": the extraction's
    # preprocessing only, so that the frozen stages' output can be computed once.
    augment: str = "standard"
    # Trunk stages that learn (the top ones); -1 all. The classifier's stage 2 unfreezes "the top of the
    # backbone" (methods.md §3): its last two stages by default.
    trainable_stages: int = 2
    # style-classifier
    stage1_epochs: int = 5
    stage1_lr: float = 1e-3
    lr: float = 1e-4
    patience: int = 10
    plateau_patience: int = 3
    # multitask-knn (methods.md §2); lr is for batch 64 and scales linearly with the batch size. None: the
    # paper's 2.5e-4 for a vision transformer fine-tuned whole; 1e-3 for a CNN whose top stages learn (the
    # offline EfficientNet-Lite recipe). With 2.5e-4, 8 epochs on the top two Lite0 stages barely moved
    # the descriptor: People-Art style / artist P@1 33.1 / 31.8, WikiArt style 54.0; with 1e-3, 38.4 /
    # 35.9 and 57.1 (bench/label_retrieval.py --set base_lr=0.001, both sets, same split).
    base_lr: float | None = None
    weight_decay: float = 0.05
    layer_decay: float = 0.75
    warmup_epochs: int = 5
    min_lr: float = 1e-6
    label_smoothing: float = 0.1
    task_weights: list[float] | None = None  # λ per task, 1 each by default
    knn_weight: float = 5.0
    knn_k: int = 5
    knn_margin: float = 0.2
    # backward-search (methods.md §4): Adam for the projection and heads, decayed stepwise.
    head_lr: float = 0.01
    adam_weight_decay: float = 1e-6
    step_epochs: int = 10
    step_gamma: float = 0.1
    extraction_batch_size: int = 32
    num_workers: int = 2
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("style-classifier", "multitask-knn", "backward-search"):
            raise ValueError(f"unknown label method {self.method!r}")
        if not self.labels:
            raise ValueError("name at least one label to train on")
        if self.method == "style-classifier" and len(self.labels) != 1:
            raise ValueError(
                f"the style classifier predicts one label, not {len(self.labels)} "
                f"({', '.join(self.labels)}); use multitask-knn for several"
            )
        if self.batch_size is None:
            self.batch_size = 64 if self.method == "backward-search" else 32
        if self.epochs is None:
            self.epochs = 30 if self.method == "backward-search" else 50
        if self.base_lr is None:
            self.base_lr = 2.5e-4 if self.backbone.startswith("vit_") else 1e-3
        if self.augment not in ("standard", "none"):
            raise ValueError(f"augment must be 'standard' or 'none', got {self.augment!r}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("epochs must be at least 1 and the batch size at least 2")
        if self.task_weights is not None and len(self.task_weights) != len(self.labels):
            raise ValueError("give one task weight per label")

    def key(self) -> str:
        return config_key(self)


@dataclass
class LabelData:
    """Row i of everything is one artwork; `tasks[t].targets[i]` its class for label t (-1 unknown)."""

    paths: list[str]
    tasks: list[LabelTask]
    train: np.ndarray  # rows of the label split's train part with at least one known label
    val: np.ndarray
    test: np.ndarray

    def targets(self) -> np.ndarray:
        return np.stack([task.targets for task in self.tasks], axis=1)  # (N, T)


def train_transform(config: LabelTrainConfig) -> Callable:
    mean, std = input_normalisation(config.backbone)
    if config.augment == "none":
        return eval_transform(config.input_size, mean, std)
    fill = tuple(round(255 * m) for m in mean)
    return transforms.Compose(
        [
            ResizePad(config.input_size, fill),  # the extraction's geometry first, then small changes
            transforms.RandomResizedCrop(config.input_size, scale=(0.7, 1.0), ratio=(0.9, 1.1)),
            transforms.RandomHorizontalFlip(),
            transforms.ColorJitter(0.1, 0.1, 0.1),
            transforms.ToTensor(),
            transforms.Normalize(list(mean), list(std)),
        ]
    )


class LabelledImages(Dataset):
    def __init__(self, paths: Sequence[str], rows: Sequence[int], targets: np.ndarray, transform) -> None:
        self.paths, self.rows, self.targets, self.transform = paths, list(rows), targets, transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        row = self.rows[index]
        return self.transform(load_rgb(self.paths[row])), torch.from_numpy(self.targets[row])


def compute_loss(
    model: LabelModel,
    config: LabelTrainConfig,
    z: torch.Tensor,
    logits: list[torch.Tensor],
    targets: torch.Tensor,
) -> torch.Tensor:
    """Σ_t λ_t CE_t (+ λknn · L_knn for multitask-knn; the mean over the tasks for backward-search). A task
    none of the batch knows adds nothing."""
    weights = config.task_weights or [1.0] * len(logits)
    if config.method == "backward-search" and config.task_weights is None:
        weights = [1.0 / len(logits)] * len(logits)
    smoothing = config.label_smoothing if config.method == "multitask-knn" else 0.0
    loss = z.sum() * 0.0
    for task, (weight, task_logits) in enumerate(zip(weights, logits, strict=True)):
        known = targets[:, task] >= 0
        if known.any():
            loss = loss + weight * F.cross_entropy(
                task_logits[known].float(), targets[known, task], label_smoothing=smoothing
            )
    if config.method == "multitask-knn" and config.knn_weight > 0:
        loss = loss + config.knn_weight * knn_triplet_loss(
            z, targets, k=config.knn_k, margin=config.knn_margin
        )
    return loss


def train_one_epoch(
    model: LabelModel,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    config: LabelTrainConfig,
    device: torch.device,
    frozen_stages: int,
    from_stage: int = 0,
    on_step: Callable[[int], None] = lambda step: None,
    progress: Callable[[int, int, float], None] = lambda step, steps, loss: None,
) -> float:
    """One pass over the training rows. `from_stage` > 0: the loader yields cached outputs of the frozen
    stages instead of images. `on_step` runs before each step (the learning-rate schedule)."""
    set_train_mode(model, frozen_stages)
    total, count, steps = 0.0, 0, len(loader)
    for step, (inputs, targets) in enumerate(loader, start=1):
        on_step(step)
        inputs = inputs.to(device, non_blocking=True)
        if inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        targets = targets.to(device)
        with autocast_for(device):
            z, logits = model.forward_train(inputs.float() if from_stage else inputs, from_stage)
        loss = compute_loss(model, config, z.float(), [x.float() for x in logits], targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(targets)
        count += len(targets)
        progress(step, steps, total / max(count, 1))
    return total / max(count, 1)


@torch.no_grad()
def predict(
    model: LabelModel,
    data: LabelData,
    rows: np.ndarray,
    config: LabelTrainConfig,
    cache: FrozenCache | None,
    from_stage: int,
    device: torch.device,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(signatures, per-task predicted classes) of `rows`, from the cache when there is one."""
    model.eval()
    signatures, predictions = [], [[] for _ in data.tasks]
    for start in range(0, len(rows), config.extraction_batch_size):
        chunk = rows[start : start + config.extraction_batch_size]
        if cache is not None:
            inputs = cache.take(chunk).to(device).float()
        else:
            transform = eval_transform(config.input_size, *input_normalisation(config.backbone))
            inputs = torch.stack([transform(load_rgb(data.paths[row])) for row in chunk]).to(device)
        with autocast_for(device):
            z, logits = model.forward_train(inputs, from_stage if cache is not None else 0)
        signatures.append(F.normalize(z.float(), dim=1).cpu().numpy())
        for task, task_logits in enumerate(logits):
            predictions[task].append(task_logits.float().argmax(dim=1).cpu().numpy())
    dim = model.dim
    return (
        np.concatenate(signatures) if signatures else np.zeros((0, dim), np.float32),
        [np.concatenate(p) if p else np.zeros(0, np.int64) for p in predictions],
    )


@dataclass
class LabelEvaluation:
    accuracy: dict[str, float]  # classification accuracy of each head on the rows that know its label
    precision: list[LabelPrecision]  # leave-one-out P@k by label among the rows

    @property
    def mean_p1(self) -> float:
        values = [p.precision[1] for p in self.precision if p.n_queries]
        return float(np.mean(values)) if values else float("nan")

    def as_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "precision": {p.label: p.as_dict() for p in self.precision},
        }


def evaluate(
    vectors: np.ndarray, predictions: list[np.ndarray], data: LabelData, rows: np.ndarray
) -> LabelEvaluation:
    """Accuracy of the heads and leave-one-out P@1/5/10 by each label, over `rows` (a split)."""
    accuracy, precision = {}, []
    for task, predicted in zip(data.tasks, predictions, strict=True):
        truth = task.targets[rows]
        known = truth >= 0
        accuracy[task.name] = (
            float((predicted[known] == truth[known]).mean()) if known.any() else float("nan")
        )
        precision.append(label_precision(vectors, truth, task.name))
    return LabelEvaluation(accuracy, precision)


def _score(config: LabelTrainConfig, evaluation: LabelEvaluation) -> float:
    """What picks the best epoch: the classifier's validation accuracy (methods.md §3), the multitask
    model's validation P@1 averaged over its tasks (what it is for), Backward Search's validation accuracy
    averaged over its heads (what its search relies on)."""
    if config.method == "style-classifier":
        return next(iter(evaluation.accuracy.values()))
    if config.method == "backward-search":
        values = [v for v in evaluation.accuracy.values() if not math.isnan(v)]
        return float(np.mean(values)) if values else float("nan")
    return evaluation.mean_p1


@dataclass
class LabelFitResult:
    model: LabelModel
    origin: object
    history: list[dict]
    resumed_from_epoch: int
    best_epoch: int
    seconds_per_epoch: float
    test: LabelEvaluation | None = None
    seconds_by_phase: dict[str, float] = field(default_factory=dict)


@dataclass
class _Phase:
    name: str
    epochs: int
    trainable_stages: int


def _phases(config: LabelTrainConfig) -> list[_Phase]:
    if config.method == "style-classifier":
        return [
            _Phase("stage 1 (backbone frozen)", config.stage1_epochs, 0),
            _Phase("stage 2 (top of the backbone)", config.epochs, config.trainable_stages),
        ]
    # No head-only epochs first: linear probing then fine-tuning (Kumar et al., ICLR 2022) measured worse
    # here (People-Art artist P@1 29.4 against 31.8, bench/label_retrieval.py --set head_epochs=5 at
    # 089f7d5): heads that already fit move the backbone, hence the descriptor, less.
    if config.method == "backward-search":
        return [_Phase("backward-search", config.epochs, config.trainable_stages)]
    return [_Phase("multitask", config.epochs, config.trainable_stages)]


def _optimizer(
    model: LabelModel, config: LabelTrainConfig, phase: _Phase
) -> tuple[torch.optim.Optimizer, list[float]]:
    """The optimiser and each parameter group's peak learning rate."""
    if config.method == "style-classifier":
        lr = config.stage1_lr if phase.trainable_stages == 0 else config.lr
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=lr), [lr]
    if config.method == "backward-search":
        trunk = [p for p in model.trunk.parameters() if p.requires_grad]
        rest = [p for n, p in model.named_parameters() if not n.startswith("trunk.") and p.requires_grad]
        groups = [{"params": rest, "lr": config.head_lr}]
        if trunk:
            groups.append({"params": trunk, "lr": config.lr})
        optimizer = torch.optim.Adam(groups, weight_decay=config.adam_weight_decay)
        return optimizer, [group["lr"] for group in groups]
    assert config.base_lr is not None
    peak = config.base_lr * config.batch_size / 64  # the paper's linear scaling from batch 64
    ids = layer_ids(model.trunk)
    # MAE's layer-wise decay (BEiT): the layer nearest the heads learns at the full rate for a ViT (its
    # fc_norm, scale 1, each block below × 0.75); a CNN's top stage at 0.75, as measured in the bench.
    top = max(ids.values(), default=0) + (0 if model.stages is None else 1)
    groups: dict[tuple[int, bool], list[nn.Parameter]] = {}
    for name, parameter in model.trunk.named_parameters():
        if parameter.requires_grad:
            no_decay = parameter.dim() == 1 or name.endswith(("cls_token", "pos_embed"))
            groups.setdefault((ids[name], no_decay), []).append(parameter)
    head_params = [p for n, p in model.named_parameters() if not n.startswith("trunk.") and p.requires_grad]
    param_groups, peaks = [], []
    for (layer, no_decay), params in sorted(groups.items()):
        scale = config.layer_decay ** (top - layer)
        param_groups.append({"params": params, "weight_decay": 0.0 if no_decay else config.weight_decay})
        peaks.append(peak * scale)
    param_groups.append({"params": head_params, "weight_decay": config.weight_decay})
    peaks.append(peak)
    for group, lr in zip(param_groups, peaks, strict=True):
        group["lr"] = lr
    return torch.optim.AdamW(param_groups), peaks


def cosine_with_warmup(step: int, total: int, warmup: int, peak: float, floor: float) -> float:
    """Linear warm-up from 0 over `warmup` steps, then cosine from `peak` to `floor` at `total`."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class WarmupCosine:
    """Sets each parameter group's learning rate before a step (`cosine_with_warmup`, the peaks scaled per
    group by the layer-wise decay); the floor is `floor_ratio` of each group's peak."""

    def __init__(
        self, optimizer, peaks: list[float], total: int, warmup: int, floor_ratio: float, enabled=True
    ):
        self.optimizer, self.peaks, self.total, self.warmup = optimizer, peaks, total, warmup
        self.floor_ratio, self.enabled = floor_ratio, enabled

    def at(self, offset: int, step: int) -> None:
        if not self.enabled:
            return
        for group, peak in zip(self.optimizer.param_groups, self.peaks, strict=True):
            group["lr"] = cosine_with_warmup(
                offset + step - 1, self.total, self.warmup, peak, self.floor_ratio * peak
            )


def fit(
    config: LabelTrainConfig,
    data: LabelData,
    checkpoint_dir: Path,
    progress: ProgressCallback = no_progress,
    log: Callable[[str], None] = lambda line: None,
) -> LabelFitResult:
    """Train, keep the best epoch by validation, checkpoint every epoch, evaluate the best on test.

    Resumes from `checkpoint_dir/last.pt` when it was written with the same config and data."""
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    if len(data.train) < 2 or len(data.val) < 1:
        raise ValueError(
            f"too few labelled artworks to train on ({len(data.train)} in train, {len(data.val)} in val)"
        )
    device = pick_device(config.device)
    model, origin = build_label_model(
        config.method, config.backbone, [t.n_classes for t in data.tasks], config.weights, config.weights_file
    )
    model = model.to(device).to(memory_format=torch.channels_last)
    targets = data.targets()
    phases = _phases(config)
    total_epochs = sum(p.epochs for p in phases)
    last_path, best_path = checkpoint_dir / "last.pt", checkpoint_dir / "best.pt"
    data_key = hashlib.sha256(targets.tobytes() + data.train.tobytes() + data.val.tobytes()).hexdigest()[:16]
    state: dict | None = None
    if last_path.exists():
        state = torch.load(last_path, map_location=device, weights_only=False)
        if state.get("config_key") != config.key() or state.get("data_key") != data_key:
            log("ignoring a checkpoint written with other settings or labels")
            state = None
    history: list[dict] = state["history"] if state else []
    best_score = state["best_score"] if state else -math.inf
    best_epoch = state["best_epoch"] if state else 0
    done_epochs = state["epoch"] if state else 0
    if state:
        model.load_state_dict(state["model"])
        torch.set_rng_state(state["torch_rng"].cpu())
        log(f"resumed after epoch {done_epochs} of {total_epochs}")
    resumed_from = done_epochs
    started_all = time.monotonic()
    trained_epochs = 0

    def report(epoch: int, within: float, message: str) -> None:
        left = max(1, total_epochs - resumed_from)
        progress(
            min(1.0, (epoch - 1 - resumed_from + within) / left * 0.95),
            f"epoch {epoch}/{total_epochs}: {message}",
        )

    epoch = 0
    stopped_early = False
    for phase_index, phase in enumerate(phases):
        first_epoch, last_epoch = epoch + 1, epoch + phase.epochs
        epoch = last_epoch
        if done_epochs >= last_epoch:  # finished before a restart (an early stop records the phase's end)
            continue
        frozen = freeze_below(model, phase.trainable_stages)
        optimizer, peaks = _optimizer(model, config, phase)
        plateau = (
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                # Halved once `plateau_patience` epochs in a row did not improve (Keras's meaning, the
                # NGA code's); PyTorch halves after patience + 1 such epochs, hence the − 1.
                optimizer,
                mode="max",
                factor=0.5,
                patience=max(0, config.plateau_patience - 1),
            )
            if config.method == "style-classifier" and phase_index == 1
            else None
        )
        since_best = 0
        if state and state.get("phase") == phase_index and first_epoch <= done_epochs:
            optimizer.load_state_dict(state["optimizer"])
            if plateau is not None and state.get("plateau"):
                plateau.load_state_dict(state["plateau"])
            since_best = state.get("since_best", 0)
        # Frozen stages give the same output every epoch without augmentation: compute it once.
        cache, from_stage = None, 0
        if config.augment == "none" and frozen and model.stages is not None:
            report(max(first_epoch, done_epochs + 1), 0.0, f"{phase.name}: computing the frozen stages once")
            cache = _frozen_outputs(
                model, data, frozen, config, device, report, max(first_epoch, done_epochs + 1)
            )
            from_stage = frozen
        drop_last = len(data.train) > config.batch_size
        steps_per_epoch = (
            len(data.train) // config.batch_size
            if drop_last
            else math.ceil(len(data.train) / config.batch_size)
        )
        warmup = min(config.warmup_epochs, phase.epochs // 4) * steps_per_epoch
        schedule = WarmupCosine(
            optimizer,
            peaks,
            phase.epochs * steps_per_epoch,
            warmup,
            config.min_lr / peaks[-1],
            enabled=config.method == "multitask-knn" and phase.trainable_stages != 0,
        )
        for epoch_number in range(max(first_epoch, done_epochs + 1), last_epoch + 1):
            generator = torch.Generator().manual_seed(config.seed + epoch_number)
            if cache is not None:
                dataset: Dataset = TensorDataset(
                    cache.take(data.train), torch.from_numpy(targets[data.train])
                )
            else:
                dataset = LabelledImages(data.paths, data.train.tolist(), targets, train_transform(config))
            loader = DataLoader(
                dataset,
                batch_size=config.batch_size,
                shuffle=True,
                drop_last=drop_last,
                num_workers=0,
                generator=generator,
            )
            offset = (epoch_number - first_epoch) * steps_per_epoch
            if config.method == "backward-search":  # × gamma every step_epochs epochs (methods.md §4)
                decay = config.step_gamma ** ((epoch_number - first_epoch) // config.step_epochs)
                for group, peak in zip(optimizer.param_groups, peaks, strict=True):
                    group["lr"] = peak * decay
            started = time.monotonic()
            loss = train_one_epoch(
                model,
                loader,
                optimizer,
                config,
                device,
                frozen,
                from_stage,
                on_step=functools.partial(schedule.at, offset),
                progress=lambda step, steps, loss, e=epoch_number, name=phase.name: report(
                    e, 0.85 * step / steps, f"{name}, step {step}/{steps}, loss {loss:.4f}"
                ),
            )
            seconds = time.monotonic() - started
            trained_epochs += 1
            report(epoch_number, 0.85, "evaluating on val")
            vectors, predictions = predict(model, data, data.val, config, cache, from_stage, device)
            val = evaluate(vectors, predictions, data, data.val)
            score = _score(config, val)
            improved = score > best_score or (math.isnan(best_score) and not math.isnan(score))
            history.append(
                {
                    "epoch": epoch_number,
                    "phase": phase.name,
                    "loss": loss,
                    "seconds": seconds,
                    "val_score": None if math.isnan(score) else score,
                    "val_accuracy": {k: (None if math.isnan(v) else v) for k, v in val.accuracy.items()},
                    "lr": optimizer.param_groups[-1]["lr"],
                }
            )
            measure = "P@1" if config.method == "multitask-knn" else "accuracy"
            note = " (best so far)" if improved else ""
            log(
                f"epoch {epoch_number} ({phase.name}): loss {loss:.4f}, "
                f"val {measure} {score:.4f}{note}, {seconds:.0f} s"
            )
            if improved:
                best_score, best_epoch, since_best = score, epoch_number, 0
                atomic_torch_save(
                    {"model": model.state_dict(), "epoch": epoch_number, "config": asdict(config)}, best_path
                )
            else:
                since_best += 1
            if plateau is not None:
                plateau.step(score)
            stop = plateau is not None and since_best >= config.patience
            atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "plateau": plateau.state_dict() if plateau is not None else None,
                    "epoch": last_epoch if stop else epoch_number,
                    "phase": phase_index,
                    "history": history,
                    "best_score": best_score,
                    "best_epoch": best_epoch,
                    "since_best": since_best,
                    "config": asdict(config),
                    "config_key": config.key(),
                    "data_key": data_key,
                    "torch_rng": torch.get_rng_state(),
                },
                last_path,
            )
            report(epoch_number, 1.0, f"val {score:.4f}")
            if stop:
                log(f"early stopping: no improvement in {config.patience} epochs")
                stopped_early = True
                break
        if stopped_early:
            break
    if best_path.exists():
        model.load_state_dict(torch.load(best_path, map_location=device, weights_only=False)["model"])
    model.eval()
    test = None
    if len(data.test):
        progress(0.96, "evaluating the best epoch on test")
        vectors, predictions = predict(model, data, data.test, config, None, 0, device)
        test = evaluate(vectors, predictions, data, data.test)
    elapsed = time.monotonic() - started_all
    by_phase: dict[str, list[float]] = {}
    for entry in history:
        by_phase.setdefault(entry["phase"], []).append(entry["seconds"])
    return LabelFitResult(
        model,
        origin,
        history,
        resumed_from,
        best_epoch,
        # The last phase's: the classifier's stage 1 on cached features costs next to nothing.
        float(np.mean(by_phase[history[-1]["phase"]])) if history else elapsed / max(trained_epochs, 1),
        test,
        {phase: float(np.mean(values)) for phase, values in by_phase.items()},
    )


class FrozenCache:
    """The frozen stages' output for the train and val rows, computed once (rows by position)."""

    def __init__(self, rows: np.ndarray, tensor: torch.Tensor, n_rows: int) -> None:
        self.position = np.full(n_rows, -1, dtype=np.int64)
        self.position[rows] = np.arange(len(rows))
        self.tensor = tensor

    def take(self, rows: np.ndarray) -> torch.Tensor:
        positions = self.position[np.asarray(rows)]
        assert (positions >= 0).all(), "a row outside the cached train and val rows"
        return self.tensor[torch.as_tensor(positions)]


@torch.no_grad()
def _frozen_outputs(
    model: LabelModel,
    data: LabelData,
    stages: int,
    config: LabelTrainConfig,
    device: torch.device,
    report,
    epoch: int,
) -> FrozenCache:
    """Output of the first `stages` stages for the train and val rows. Feature maps are kept in bfloat16
    (a 1280 × 7 × 7 map is 125 KB an image); when the whole trunk is frozen (the classifier's stage 1),
    its pooled vector instead, 49 times smaller."""
    rows = np.unique(np.concatenate([data.train, data.val]))
    whole_trunk = stages >= (model.n_trunk_stages() or 0)
    model.eval()
    tensor: torch.Tensor | None = None
    transform = eval_transform(config.input_size, *input_normalisation(config.backbone))
    loader = DataLoader(
        LabelledImages(data.paths, rows.tolist(), data.targets(), transform),
        batch_size=config.extraction_batch_size,
        # Not in a daemonic process (a Celery prefork child may not start any): `effective_num_workers`.
        num_workers=effective_num_workers(min(config.num_workers, 2)),
        shuffle=False,
    )
    done = 0
    for images, _ in loader:
        with autocast_for(device):
            out = model.prefix(images.to(device).contiguous(memory_format=torch.channels_last), stages)
        out = model.pooled(out).cpu() if whole_trunk else out.to(torch.bfloat16).cpu()
        if tensor is None:
            tensor = torch.zeros((len(rows), *out.shape[1:]), dtype=out.dtype)
        tensor[done : done + len(out)] = out
        done += len(out)
        report(epoch, 0.0, f"computing the frozen stages once: {done}/{len(rows)} images")
    assert tensor is not None
    return FrozenCache(rows, tensor, len(data.paths))


def signatures_for(
    model: LabelModel, paths: Sequence[str], config: LabelTrainConfig, progress=None
) -> np.ndarray:
    """Signatures with the extraction's code path and the training's preprocessing (the same transform)."""
    mean, std = input_normalisation(config.backbone)
    return extract_signatures(
        model,
        list(paths),
        batch_size=config.extraction_batch_size,
        num_workers=config.num_workers,
        device=config.device,
        input_size=config.input_size,
        progress=progress,
        mean=mean,
        std=std,
    )


class _RawDescriptor(nn.Module):
    """A label model whose forward gives the signature layer before L2 normalisation (Backward Search's z,
    which its attribute heads were trained on)."""

    def __init__(self, model: LabelModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.descriptor(images).float()


def latents_for(
    model: LabelModel, paths: Sequence[str], config: LabelTrainConfig, progress=None
) -> np.ndarray:
    """`signatures_for`, before normalisation (the same code path and preprocessing)."""
    return signatures_for(_RawDescriptor(model).eval(), paths, config, progress)  # type: ignore[arg-type]
