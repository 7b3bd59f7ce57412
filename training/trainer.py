"""Fine-tuning the signature model on known connections (plain module, no Django).

Shaped like torchvision's classification references: `train_one_epoch`, `evaluate` and `fit`
(the main loop); checkpoints carry their arguments and the loop resumes from the last one.
The method is the thesis's (methods.md §1): triplets (A, B, C) from known connections and mined
hard negatives, the compound hinge loss on cosine distances, Adam with weight decay, the thesis
augmentation, re-mining whenever validation improves.

Bugs of the thesis code we do not repeat: BatchNorm "freezing" that froze nothing (we put
BatchNorm layers in eval mode for real when `freeze_batchnorm` is set: batches of 4–8 triplets
give useless batch statistics), a learning-rate schedule that never fired (ours has none, on
purpose), `type=bool` flags (the config is a dataclass, not argparse strings).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from annotations.storage import atomic_write
from jobs.progress import ProgressCallback, no_progress

from .backbones import build_model, input_normalisation
from .extraction import cpu_supports_bf16, extract_signatures, load_rgb, pick_device
from .losses import info_nce, koleo, make_loss
from .metrics import BOOTSTRAP_SAMPLES, RetrievalMetrics, evaluate_retrieval
from .mining import mine_triplets
from .whitening import DEFAULT_SHRINKAGE


@dataclass
class TrainConfig:
    backbone: str = "tf_efficientnet_lite0"
    weights: str = "auto"
    weights_file: str | None = None
    # GeM (Radenović et al. 2018) rather than the thesis's average pooling: with whitening, +0.03 mAP on the
    # demo's hidden connections and the People-Art dev set over average pooling (--ablation descriptors).
    pooling: str = "gem"
    input_size: int = 224
    loss: str = "compound_hinge"
    margin: float = 0.01
    positive_margin: float = 0.1
    lr: float = 1e-5
    weight_decay: float = 1e-4
    batch_size: int = 8
    epochs: int = 5
    negatives_per_pair: int = 10
    freeze_batchnorm: bool = True
    color_jitter: float = 0.3
    flip_p: float = 0.3
    rotation_degrees: float = 5.0
    # Self-supervised positives (SSCD, Pizzi et al. CVPR 2022): each step also embeds two strong
    # augmentations of `ssl_batch` images of the unlabelled pool and adds ssl_weight × (InfoNCE at
    # ssl_temperature + koleo_weight × KoLeo). 0 turns it off. SSCD's values: temperature 0.05, λ 30.
    ssl_weight: float = 0.0
    ssl_batch: int = 16
    ssl_temperature: float = 0.05
    koleo_weight: float = 30.0
    # Whitening learned on the collection's signatures after training (`training.whitening`); None: off.
    whitening_shrinkage: float | None = DEFAULT_SHRINKAGE
    extraction_batch_size: int = 32
    num_workers: int = 2
    device: str = "auto"
    seed: int = 0

    def key(self) -> str:
        return config_key(self)


def config_key(config) -> str:
    """Identifies a run's settings (a config dataclass), for matching a checkpoint to resume from."""
    return hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:16]


def config_from(cls, stored: dict, **overrides):
    """The config dataclass `cls` from a version's stored config (unknown keys, such as its training
    history, ignored) with the given non-None overrides."""
    known = cls.__dataclass_fields__
    values = {k: v for k, v in stored.items() if k in known}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)


@dataclass
class TrainingData:
    """What the loop needs, as plain arrays: row i of everything is one artwork."""

    paths: list[str]
    component_of: np.ndarray  # component id per row, -1 when none
    train_pairs: list[tuple[int, int]]  # known linking connections inside the train split
    pool: np.ndarray  # rows that may serve as negatives (train split and unlinked artworks)
    excluded_partners: dict[int, set[int]] = field(default_factory=dict)  # SIMILAR partners
    historian_negatives: dict[int, list[int]] = field(default_factory=dict)  # NEGATIVE partners
    # rows whose augmentations are self-supervised positives: unlabelled and train artworks, never val/test
    # nor the sources of the synthetic validation
    unlabelled: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    val_queries: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    test_queries: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def partners(self) -> dict[int, set[int]]:
        """Ground truth for evaluation: the other members of each row's component."""
        members: dict[int, set[int]] = {}
        for row, component in enumerate(self.component_of.tolist()):
            if component >= 0:
                members.setdefault(component, set()).add(row)
        return {row: members[c] - {row} for row, c in enumerate(self.component_of.tolist()) if c >= 0}

    def groups(self) -> dict[int, int]:
        """Bootstrap groups of the queries: their connected components."""
        return {row: c for row, c in enumerate(self.component_of.tolist()) if c >= 0}


def train_transform(config: TrainConfig) -> transforms.Compose:
    mean, std = input_normalisation(config.backbone)
    jitter = config.color_jitter
    return transforms.Compose(
        [
            # methods.md: resize to res+100, random resized crop to res, jitter 0.3, flip p=0.3, ±5°.
            transforms.Resize(config.input_size + 100),
            transforms.RandomResizedCrop(config.input_size, scale=(0.6, 1.0)),
            transforms.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter),
            transforms.RandomHorizontalFlip(p=config.flip_p),
            transforms.RandomRotation(config.rotation_degrees),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


def ssl_transform(config: TrainConfig) -> transforms.Compose:
    """SSCD-style strong augmentations (crops down to a fifth of the picture, mirror, colour, greyscale,
    blur, perspective): the kinds of change between a painting and its copies and photographs."""
    mean, std = input_normalisation(config.backbone)
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(config.input_size, scale=(0.2, 1.0)),
            transforms.RandomHorizontalFlip(p=0.5),
            transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            transforms.RandomGrayscale(p=0.2),
            transforms.RandomApply([transforms.GaussianBlur(9, sigma=(0.1, 2.0))], p=0.3),
            transforms.RandomPerspective(distortion_scale=0.3, p=0.3),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


class AugmentedPairs(Dataset):
    """Two independent augmentations of one image: a self-supervised positive pair."""

    def __init__(self, paths: Sequence[str], rows: Sequence[int], transform) -> None:
        self.paths, self.rows, self.transform = paths, list(rows), transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        image = load_rgb(self.paths[self.rows[index]])
        return self.transform(image), self.transform(image)


def endless(loader: DataLoader) -> Iterator:
    while True:
        yield from loader


class TripletDataset(Dataset):
    def __init__(self, paths: Sequence[str], triplets: Sequence[tuple[int, int, int]], transform) -> None:
        self.paths, self.triplets, self.transform = paths, list(triplets), transform

    def __len__(self) -> int:
        return len(self.triplets)

    def load(self, row: int) -> torch.Tensor:
        # The same reading as extraction (EXIF orientation, clear error naming the file).
        return self.transform(load_rgb(self.paths[row]))

    def __getitem__(self, index: int):
        a, b, c = self.triplets[index]
        return self.load(a), self.load(b), self.load(c)


def freeze_batchnorm(model: nn.Module) -> None:
    """Really freeze BatchNorm: eval mode (running statistics fixed) and no gradient."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            for parameter in module.parameters():
                parameter.requires_grad_(False)


def autocast_for(device: torch.device):
    if device.type == "cuda":
        return torch.autocast(
            "cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        )
    if cpu_supports_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable,
    device: torch.device,
    config: TrainConfig,
    progress: Callable[[int, int, float], None] = lambda step, steps, loss: None,
    augmented: Iterator | None = None,
) -> float:
    """One pass over the triplets. With `augmented` (batches of self-supervised pairs), each step embeds
    them in the same forward pass (BatchNorm is frozen, so sharing the batch changes no statistics) and adds
    the SSCD term to the triplet loss."""
    model.train()
    if config.freeze_batchnorm:
        freeze_batchnorm(model)
    total, count = 0.0, 0
    steps = len(loader)
    for step, (a, b, c) in enumerate(loader, start=1):
        parts = [a, b, c]
        if augmented is not None:
            parts += list(next(augmented))
        batch = torch.cat(parts).to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with autocast_for(device):
            signatures = model(batch).float()
        n = len(a)
        sa, sb, sc = signatures[:n], signatures[n : 2 * n], signatures[2 * n : 3 * n]
        loss = loss_fn(sa, sb, sc)
        if augmented is not None:
            first, second = signatures[3 * n :].chunk(2)
            # KoLeo on each view set apart: with both, an image's nearest neighbour is its own positive.
            spread = (koleo(first) + koleo(second)) / 2
            loss = loss + config.ssl_weight * (
                info_nce(first, second, config.ssl_temperature) + config.koleo_weight * spread
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach())
        count += len(a)
        progress(step, steps, total / max(count, 1))
    return total / max(count, 1)


def signatures_for(model: nn.Module, paths: Sequence[str], config: TrainConfig, progress=None) -> np.ndarray:
    return extract_signatures(
        model,
        list(paths),
        batch_size=config.extraction_batch_size,
        num_workers=config.num_workers,
        device=config.device,
        input_size=config.input_size,
        progress=progress,
    )


def evaluate(
    vectors: np.ndarray, data: TrainingData, split: str = "val", bootstrap: int = BOOTSTRAP_SAMPLES
) -> RetrievalMetrics:
    queries = data.val_queries if split == "val" else data.test_queries
    return evaluate_retrieval(vectors, queries, data.partners(), groups=data.groups(), bootstrap=bootstrap)


def atomic_torch_save(obj, path: Path) -> None:
    """A killed process never leaves a truncated checkpoint under the final name."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


@dataclass
class FitResult:
    model: nn.Module  # the best epoch's weights (by val mAP)
    origin: object
    history: list[dict]
    resumed_from_epoch: int
    best_epoch: int


def fit(
    config: TrainConfig,
    data: TrainingData,
    checkpoint_dir: Path,
    progress: ProgressCallback = no_progress,
    log: Callable[[str], None] = lambda line: None,
) -> FitResult:
    """The main loop: mine, train an epoch, evaluate on val, keep the best, checkpoint, repeat.

    Returns the best epoch's model; its held-out metrics are the caller's to compute (`rounds.train_round`
    evaluates the signatures it stores).

    Resumes from `checkpoint_dir/last.pt` when it was written by a run with the same config.
    """
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    model, origin = build_model(config.backbone, config.weights, config.weights_file, config.pooling)
    model = model.to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay
    )
    loss_fn = make_loss(
        config.loss,
        **(
            {"margin": config.margin, "positive_margin": config.positive_margin}
            if config.loss == "compound_hinge"
            else {"margin": config.margin}
        ),
    )
    last_path, best_path = checkpoint_dir / "last.pt", checkpoint_dir / "best.pt"
    start_epoch, history, best_map, best_epoch = 1, [], -math.inf, 0
    if last_path.exists():
        state = torch.load(last_path, map_location=device, weights_only=False)
        if state.get("config_key") == config.key():
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            start_epoch, history = state["epoch"] + 1, state["history"]
            best_map, best_epoch = state["best_map"], state["best_epoch"]
            torch.set_rng_state(state["torch_rng"].cpu())  # map_location may have moved it to the GPU
            log(f"resumed from the checkpoint of epoch {state['epoch']}")
        else:
            log("ignoring a checkpoint written with other settings")
    resumed_from = start_epoch - 1

    # Progress: each epoch is mining (10%), training (75%), validation (15%) of its share.
    epochs_left = max(1, config.epochs - resumed_from)

    def report(epoch: int, within: float, message: str) -> None:
        done = (epoch - 1 - resumed_from + within) / epochs_left
        progress(min(done, 1.0), f"epoch {epoch}/{config.epochs}: {message}")

    augmented = None
    if config.ssl_weight > 0 and len(data.unlabelled) >= max(2, config.ssl_batch):
        augmented = endless(
            DataLoader(
                AugmentedPairs(data.paths, data.unlabelled.tolist(), ssl_transform(config)),
                batch_size=config.ssl_batch,
                shuffle=True,
                num_workers=0,
                drop_last=True,  # InfoNCE needs negatives: never a batch of one
                generator=torch.Generator().manual_seed(config.seed + 10_000 + start_epoch),
            )
        )
        log(f"self-supervised positives from {len(data.unlabelled)} images, {config.ssl_batch} per step")
    triplets: list[tuple[int, int, int]] = []
    need_mining = True
    for epoch in range(start_epoch, config.epochs + 1):
        if need_mining or not triplets:
            report(epoch, 0.0, "mining hard negatives")
            # Progress from inside the extraction: that is also where a cancel (a worker shutting down)
            # takes effect, within a batch rather than after the whole gallery (issue 10.13).
            pool_vectors = signatures_for(
                model,
                data.paths,
                config,
                progress=lambda f, m, epoch=epoch: report(epoch, 0.1 * f, f"mining hard negatives, {m}"),
            )
            triplets = mine_triplets(
                pool_vectors,
                data.train_pairs,
                data.pool,
                data.component_of,
                data.excluded_partners,
                data.historian_negatives,
                per_pair=config.negatives_per_pair,
            )
            log(f"epoch {epoch}: mined {len(triplets)} triplets from {len(data.train_pairs)} pairs")
            need_mining = False
        if not triplets:
            raise ValueError("no training triplets: there are no known connections inside the train split")
        loader = DataLoader(
            TripletDataset(data.paths, triplets, train_transform(config)),
            batch_size=config.batch_size,
            shuffle=True,
            num_workers=0,
            drop_last=False,
            generator=torch.Generator().manual_seed(config.seed + epoch),
        )
        started = time.monotonic()
        mean_loss = train_one_epoch(
            model,
            loader,
            optimizer,
            loss_fn,
            device,
            config,
            progress=lambda step, steps, loss, epoch=epoch: report(
                epoch, 0.1 + 0.75 * step / steps, f"step {step}/{steps}, loss {loss:.4f}"
            ),
            augmented=augmented,
        )
        report(epoch, 0.85, "evaluating on val")
        vectors = signatures_for(
            model,
            data.paths,
            config,
            progress=lambda f, m, epoch=epoch: report(epoch, 0.85 + 0.15 * f, f"evaluating on val, {m}"),
        )
        val = evaluate(vectors, data, "val", bootstrap=0)  # the gate, not epoch choice, needs intervals
        improved = val.map > best_map
        history.append(
            {
                "epoch": epoch,
                "loss": mean_loss,
                # NaN (no val query has a partner) is not valid JSON; the history is stored as JSON.
                "val_map": None if math.isnan(val.map) else val.map,
                "seconds": time.monotonic() - started,
            }
        )
        best_note = " (best so far)" if improved else ""
        log(f"epoch {epoch}: loss {mean_loss:.5f}, val mAP {val.map:.4f}{best_note}")
        if improved:
            best_map, best_epoch = val.map, epoch
            atomic_torch_save(
                {"model": model.state_dict(), "epoch": epoch, "config": asdict(config)}, best_path
            )
            need_mining = True  # methods.md: re-mine whenever validation improves
        atomic_torch_save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch,
                "history": history,
                "best_map": best_map,
                "best_epoch": best_epoch,
                "config": asdict(config),
                "config_key": config.key(),
                "torch_rng": torch.get_rng_state(),
            },
            last_path,
        )
        report(epoch, 1.0, f"val mAP {val.map:.4f}")

    if best_path.exists():
        model.load_state_dict(torch.load(best_path, map_location=device, weights_only=False)["model"])
    # No final evaluation here: the caller computes every artwork's signature with this model anyway and
    # evaluates those (a pass over the gallery here cost a whole extraction per round for nothing).
    return FitResult(model, origin, history, resumed_from, best_epoch)
