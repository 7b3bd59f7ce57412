"""Label-supervised signature models (plain PyTorch, no Django): a pretrained trunk, global pooling and heads
that predict catalogue labels; the signature is a layer before the heads.

- `style-classifier` (methods.md §3; National Gallery of Art): trunk → GAP → Dense 256 (ReLU) → Dropout 0.4
  → Dense(n classes). The signature is the 256-d layer, L2-normalised, compared by cosine.
- `multitask-knn` (methods.md §2): trunk → descriptor (GAP of a CNN's map, or a ViT's mean of patch tokens →
  LayerNorm) and one linear head per label task. The signature is the descriptor, L2-normalised.
- `backward-search` (methods.md §4): trunk → GAP → projection Linear-ReLU-BN-Dropout 0.1-Linear-BN-tanh → z
  (256-d), and one MLP head per label task (256 → 256 → 128 → C with ReLU, BN, Dropout 0.4). The signature
  is z, L2-normalised; conditional search (`conditional`) moves a query's raw z until the heads agree with
  the wanted classes.

`forward(images)` returns signatures, so the extraction code, search and clustering use these models like
any other; `forward_train` also returns the logits of every head. A CNN trunk is cut into `stages` (stem,
block groups, head convolution) so that training can freeze the lower ones and, without augmentation,
compute their output once (`label_trainer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import SignatureModel, WeightsOrigin, _spec, build_model, signature_dim

LabelMethod = Literal["style-classifier", "multitask-knn", "backward-search"]
LABEL_METHODS: tuple[str, ...] = ("style-classifier", "multitask-knn", "backward-search")
EMBEDDING_DIM = 256  # methods.md §3: the Dense 256 layer; §4: z
HEAD_DROPOUT = 0.4
PROJECTION_DROPOUT = 0.1  # methods.md §4


def projection(features: int, dim: int = EMBEDDING_DIM) -> nn.Sequential:
    """Backward Search's projection to z: Linear-ReLU-BN-Dropout 0.1-Linear-BN-tanh (methods.md §4). tanh
    bounds z, which the search's L1 pull towards the query (λ·mean|z − z0|) is scaled for."""
    return nn.Sequential(
        nn.Linear(features, dim),
        nn.ReLU(),
        nn.BatchNorm1d(dim),
        nn.Dropout(PROJECTION_DROPOUT),
        nn.Linear(dim, dim),
        nn.BatchNorm1d(dim),
        nn.Tanh(),
    )


def attribute_head(dim: int, n_classes: int, dropout: float = HEAD_DROPOUT) -> nn.Sequential:
    """One attribute classifier of Backward Search: 256 → 256 → 128 → C with ReLU, BN, Dropout 0.4."""
    return nn.Sequential(
        nn.Linear(dim, 256),
        nn.ReLU(),
        nn.BatchNorm1d(256),
        nn.Dropout(dropout),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.BatchNorm1d(128),
        nn.Dropout(dropout),
        nn.Linear(128, n_classes),
    )


def trunk_stages(trunk: nn.Module) -> list[nn.Module] | None:
    """The trunk as a list of modules applied one after the other (lowest first), or None when it cannot be
    cut (a vision transformer: its blocks need the position embedding and the class token first).

    torchvision ResNet/ResNeXt: stem, layer1..4. torchvision EfficientNet: features[0..8]. timm
    EfficientNet-Lite: stem (conv_stem, bn1), blocks[0..6], head (conv_head, bn2) — its forward_features.
    """
    if hasattr(trunk, "blocks") and hasattr(trunk, "conv_stem"):
        return [
            nn.Sequential(trunk.conv_stem, trunk.bn1),
            *trunk.blocks.children(),
            nn.Sequential(trunk.conv_head, trunk.bn2),
        ]
    if hasattr(trunk, "features") and isinstance(trunk.features, nn.Sequential):
        return list(trunk.features.children())
    if isinstance(trunk, nn.Sequential) and hasattr(trunk, "layer4"):
        names = [name for name, _ in trunk.named_children()]
        stem = nn.Sequential(*[getattr(trunk, n) for n in names if not n.startswith("layer")])
        return [stem, *[getattr(trunk, n) for n in names if n.startswith("layer")]]
    return None


def layer_ids(trunk: nn.Module) -> dict[str, int]:
    """Depth of each trunk parameter, 0 = the input side, for layer-wise learning-rate decay (BEiT; MAE's
    fine-tuning uses 0.75). A ViT: patch embedding, class token and position embedding 0, block i → i + 1,
    the final norm L + 1. A CNN: its stage index (`trunk_stages`)."""
    names = [name for name, _ in trunk.named_parameters()]
    if hasattr(trunk, "blocks") and hasattr(trunk, "patch_embed"):
        depth = len(trunk.blocks)
        ids = {}
        for name in names:
            if name.startswith("blocks."):
                ids[name] = int(name.split(".")[1]) + 1
            elif name.startswith(("cls_token", "pos_embed", "patch_embed", "reg_token")):
                ids[name] = 0
            else:
                ids[name] = depth + 1
        return ids
    stages = trunk_stages(trunk)
    if stages is None:
        return dict.fromkeys(names, 0)
    owner = {id(p): index for index, stage in enumerate(stages) for p in stage.parameters()}
    return {name: owner.get(id(p), len(stages) - 1) for name, p in trunk.named_parameters()}


class LabelModel(nn.Module):
    """A trunk, pooling, an optional embedding layer and one classification head per label task."""

    def __init__(
        self,
        base: SignatureModel,
        method: str,
        n_classes: Sequence[int],
        embedding_dim: int = EMBEDDING_DIM,
        dropout: float = HEAD_DROPOUT,
    ) -> None:
        super().__init__()
        if method not in LABEL_METHODS:
            raise ValueError(f"unknown label method {method!r}; expected one of {', '.join(LABEL_METHODS)}")
        if not n_classes or any(n < 2 for n in n_classes):
            raise ValueError(f"every label task needs at least 2 classes, got {list(n_classes)}")
        self.method = method
        self.backbone = base.backbone
        self.trunk, self.pool = base.trunk, base.pool
        features = signature_dim(base.backbone) if base.backbone else embedding_dim
        if method == "style-classifier":
            self.embed: nn.Module = nn.Sequential(nn.Linear(features, embedding_dim), nn.ReLU())
            self.dim = embedding_dim
            self.dropout: nn.Module = nn.Dropout(dropout)
        elif method == "backward-search":
            self.embed, self.dim, self.dropout = (
                projection(features, embedding_dim),
                embedding_dim,
                nn.Identity(),
            )
        else:
            self.embed, self.dim, self.dropout = nn.Identity(), features, nn.Identity()
        if method == "backward-search":
            self.heads = nn.ModuleList(attribute_head(self.dim, n, dropout) for n in n_classes)
        else:
            self.heads = nn.ModuleList(nn.Linear(self.dim, n) for n in n_classes)
        self.stages = trunk_stages(self.trunk)
        self.whitening = None  # label signatures are compared raw (cosine), as in both papers

    def pooled(self, features: torch.Tensor) -> torch.Tensor:
        return features.float() if features.dim() == 2 else self.pool(features)

    def descriptor(self, images: torch.Tensor, from_stage: int = 0) -> torch.Tensor:
        """The un-normalised signature layer; `from_stage` > 0 takes the output of stage from_stage − 1
        (a cached frozen prefix) instead of images."""
        if from_stage == 0:
            features = self.trunk(images)
        else:
            assert self.stages is not None
            features = images
            for stage in self.stages[from_stage:]:
                features = stage(features)
        return self.embed(self.pooled(features))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.descriptor(images).float(), dim=1)

    def forward_train(
        self, images: torch.Tensor, from_stage: int = 0
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        z = self.descriptor(images, from_stage).float()
        hidden = self.dropout(z)
        return z, [head(hidden) for head in self.heads]

    def prefix(self, images: torch.Tensor, stages: int) -> torch.Tensor:
        """The output of the first `stages` stages (the frozen part, to cache)."""
        assert self.stages is not None
        features = images
        for stage in self.stages[:stages]:
            features = stage(features)
        return features

    def n_trunk_stages(self) -> int | None:
        return None if self.stages is None else len(self.stages)


def build_label_model(
    method: str,
    backbone: str,
    n_classes: Sequence[int],
    weights: str = "auto",
    weights_file: str | None = None,
) -> tuple[LabelModel, WeightsOrigin]:
    """A label model on `backbone` with pretrained weights where they can be found (`build_model`); GAP for
    CNN trunks (both papers), the ViT's own mean-of-patch-tokens descriptor for transformers."""
    _spec(backbone)  # a clear error for an unknown name
    base, origin = build_model(backbone, weights, weights_file, pooling="avg")
    return LabelModel(base, method, n_classes), origin


def freeze_below(model: LabelModel, trainable_stages: int) -> int:
    """Freeze all trunk stages but the top `trainable_stages` (−1: none frozen; 0: the whole trunk), with
    BatchNorm really frozen (eval mode), and return how many stages are frozen. A ViT (no stages) is
    either all frozen (0) or all trainable."""
    n = model.n_trunk_stages()
    for parameter in model.trunk.parameters():
        parameter.requires_grad_(True)
    if trainable_stages < 0:
        return 0
    if n is None:
        if trainable_stages == 0:
            for parameter in model.trunk.parameters():
                parameter.requires_grad_(False)
            return 1
        return 0
    frozen = max(0, n - trainable_stages)
    for stage in model.stages[:frozen]:  # type: ignore[index]
        for parameter in stage.parameters():
            parameter.requires_grad_(False)
    return frozen


def set_train_mode(model: LabelModel, frozen_stages: int) -> None:
    """train() for the heads (dropout); the trunk's BatchNorm layers stay in eval mode everywhere, and the
    frozen stages entirely. Batches of a few dozen images give batch statistics far noisier than the
    pretrained running ones: with BatchNorm in train mode, the loss jumped when stage 2 began (the same
    reason the connection trainer freezes them, `trainer.freeze_batchnorm`)."""
    model.train()
    if model.stages is not None:
        for stage in model.stages[:frozen_stages]:
            stage.eval()
    elif frozen_stages:
        model.trunk.eval()
    for module in model.trunk.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
