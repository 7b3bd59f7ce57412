"""Batched signature extraction: image files → (N, D) float32 signatures.

Plain PyTorch, no Django: runs in the Celery worker, the training loop (re-mining hard negatives after each
improvement, methods.md §1), the benchmarks and the tests.

The fast path, measured by bench/extraction_throughput.py against three plain loops (batch 1 with and
without autograd, batched fp32 NCHW with the same DataLoader; ×1.54 and ×1.67 against the fastest of them
for ResNeXt-50 and EfficientNet-Lite0 on a 2-CPU EPYC with AVX512_BF16): a
DataLoader whose worker processes decode and resize JPEGs while the main process runs the model;
`torch.inference_mode()` (no autograd graph or version counters); `channels_last` tensors, the layout oneDNN's
and cuDNN's convolutions are fastest with; reduced-precision autocast where the hardware computes it natively
(bf16 on CPUs with AVX512_BF16/AMX, fp16 on CUDA).
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from .backbones import IMAGENET_MEAN, IMAGENET_STD, input_normalisation

Precision = Literal["auto", "fp32", "bf16", "fp16"]
ProgressFn = Callable[[float, str], None]


class ImageReadError(RuntimeError):
    """An image file that cannot be read or decoded. Single-argument constructor on purpose: the DataLoader
    re-raises a worker's exception in the main process as `type(exc)(message)`, which keeps this type."""


class ExtractionStopped(Exception):
    """`should_stop()` returned true: extraction was abandoned between two batches."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"extraction stopped after {done} of {total} images")
        self.done, self.total = done, total


def load_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """Decode an image as upright RGB, raising ImageReadError naming the file.

    EXIF orientation is applied: photographs of artworks often carry it, and the thumbnails people judge
    links on are upright too (annotations/images.py), so the model must see the same picture.
    """
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageReadError(f"cannot read image {os.fspath(path)}: {exc}") from exc


class ResizePad:
    """Resize so that the LONGEST side is `size` (aspect ratio kept), then pad the short side, centred, to a
    `size`×`size` square.

    Padding rather than centre-cropping: a visual connection can be a motif anywhere in the picture (a figure
    at the edge of a composition copied into another work, methods.md §1), and a crop would cut it away for
    every non-square artwork. The pad colour is the normalisation mean, which Normalize maps to exactly 0, the
    most neutral input for a network trained on zero-mean data.
    """

    def __init__(self, size: int, fill: tuple[int, int, int] = (0, 0, 0)) -> None:
        self.size, self.fill = size, fill

    def __call__(self, image: Image.Image) -> Image.Image:
        width, height = image.size
        scale = self.size / max(width, height)
        new = (max(1, round(width * scale)), max(1, round(height * scale)))
        if new != image.size:
            image = image.resize(new, Image.Resampling.BILINEAR)
        if new == (self.size, self.size):
            return image
        canvas = Image.new("RGB", (self.size, self.size), self.fill)
        canvas.paste(image, ((self.size - new[0]) // 2, (self.size - new[1]) // 2))
        return canvas

    def __repr__(self) -> str:
        return f"ResizePad(size={self.size}, fill={self.fill})"


def eval_transform(
    input_size: int, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> transforms.Compose:
    """Longest side to `input_size`, centred padding to a square (see ResizePad), ToTensor, Normalize."""
    fill = tuple(round(255 * m) for m in mean)
    return transforms.Compose(
        [ResizePad(input_size, fill), transforms.ToTensor(), transforms.Normalize(list(mean), list(std))]  # type: ignore[arg-type]
    )


class ImageFileDataset(Dataset):
    """(index, image tensor) for each path; the index lets batches be written back in place."""

    def __init__(
        self, paths: Sequence[str | os.PathLike[str]], transform: Callable[[Image.Image], torch.Tensor]
    ):
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        return index, self.transform(load_rgb(self.paths[index]))


@functools.cache
def cpu_supports_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX512_BF16 or AMX) and a bf16-autocast convolution runs.

    `get_cpu_capability() == "AVX512"` alone is not enough: oneDNN runs bf16 on plain AVX-512 by emulation. On
    such a CPU (AVX-512 with VNNI but no AVX512_BF16: the development machine), forward passes of a batch of
    32 at 224 px under bf16 autocast were no faster for EfficientNet-Lite0 (41-51 vs 41-53 images/s in fp32)
    and half as fast for ResNeXt-50 (5.1-5.9 vs 10.7-11.9 images/s), and they cost accuracy.
    """
    capability = torch.backends.cpu.get_cpu_capability()
    if "AVX512" not in capability and "AMX" not in capability:
        return False
    native = False
    probe_cpu = getattr(torch, "cpu", None)
    try:
        native = bool(probe_cpu._is_avx512_bf16_supported() or probe_cpu._is_amx_tile_supported())  # type: ignore[union-attr]
    except AttributeError:  # private helpers missing in this torch: read the CPU flags ourselves
        try:
            with open("/proc/cpuinfo") as handle:
                flags = handle.read()
            native = "avx512_bf16" in flags or "amx_bf16" in flags
        except OSError:
            native = False
    if not native:
        return False
    try:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            probe = F.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3))
        return probe.dtype == torch.bfloat16 and bool(torch.isfinite(probe).all())
    except RuntimeError:
        return False


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" → the first CUDA device when there is one, else the CPU; anything else as torch.device."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_precision(device: torch.device, precision: Precision = "auto") -> torch.dtype | None:
    """The autocast dtype to use on `device`, or None for plain fp32."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return {"auto": torch.float16, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    if device.type == "cpu":
        if precision == "fp16":
            raise ValueError("fp16 autocast is not supported for CPU extraction; use bf16 or fp32")
        if precision == "bf16":
            return torch.bfloat16
        return torch.bfloat16 if cpu_supports_bf16() else None
    return None


def effective_num_workers(requested: int) -> int:
    """`requested`, or 0 inside a daemonic process.

    A Celery prefork pool child is daemonic (billiard marks multiprocessing's current process too), and a
    daemonic process may not start children: the DataLoader would fail with "AssertionError: daemonic
    processes are not allowed to have children". There the images are decoded in the worker process itself.
    """
    if requested > 0 and multiprocessing.current_process().daemon:
        return 0
    return max(0, requested)


def extract_signatures(
    model: nn.Module,
    paths: Sequence[str | os.PathLike[str]],
    batch_size: int = 32,
    num_workers: int = 2,
    device: str | torch.device = "auto",
    input_size: int = 320,
    progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    *,
    precision: Precision = "auto",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> np.ndarray:
    """Signatures of the images at `paths`, in order, as an (N, D) float32 array.

    The model is moved to `device` in channels_last layout and left there; its train/eval mode is restored
    afterwards (the training loop calls this between epochs). mean/std default to the model's backbone
    normalisation (training.backbones.input_normalisation). `progress(fraction, message)` is called after each
    batch; `should_stop()` is checked before each batch and raises ExtractionStopped when it returns true.
    Unreadable images raise ImageReadError naming the file.
    """
    paths = list(paths)
    total = len(paths)
    dev = pick_device(device)
    if mean is None or std is None:
        backbone = getattr(model, "backbone", None)
        default_mean, default_std = (
            input_normalisation(backbone) if backbone else (IMAGENET_MEAN, IMAGENET_STD)
        )
        mean = default_mean if mean is None else mean
        std = default_std if std is None else std
    dtype = resolve_precision(dev, precision)
    dim = getattr(model, "dim", None)
    if total == 0:
        return np.zeros((0, dim or 0), dtype=np.float32)

    workers = effective_num_workers(num_workers)
    loader = DataLoader(
        ImageFileDataset(paths, eval_transform(input_size, mean, std)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=dev.type == "cuda",
        # Two batches in flight per worker (the default) keep both cores busy without holding many images.
        prefetch_factor=2 if workers else None,
    )
    autocast = torch.autocast(dev.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    model.to(dev, memory_format=torch.channels_last)
    out: np.ndarray | None = None
    done = 0
    batches = iter(loader)
    try:
        with torch.inference_mode(), autocast:
            for indices, images in batches:
                if should_stop is not None and should_stop():
                    raise ExtractionStopped(done, total)
                images = images.to(dev, non_blocking=True, memory_format=torch.channels_last)
                signatures = model(images).float().cpu().numpy()
                if out is None:
                    out = np.empty((total, signatures.shape[1]), dtype=np.float32)
                out[indices.numpy()] = signatures
                done += len(indices)
                if progress is not None:
                    progress(done / total, f"signatures: {done}/{total} images")
    finally:
        # Dropping the iterator shuts its worker processes down now, also when an exception is on its way
        # out (the traceback would otherwise keep it, and the workers, alive).
        del batches
        model.train(was_training)
    assert out is not None
    return out
