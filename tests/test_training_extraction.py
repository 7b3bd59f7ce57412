"""training.extraction: batched extraction agrees with the naive loop, and behaves (no database)."""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from training.backbones import SignatureModel, build_model, input_normalisation
from training.extraction import (
    ExtractionStopped,
    ImageReadError,
    cpu_supports_bf16,
    effective_num_workers,
    eval_transform,
    extract_signatures,
    load_rgb,
    pick_device,
    resolve_precision,
)

SIZE = 64  # small inputs keep the suite fast on two cores


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Six small distinct pictures of different shapes and modes (JPEG, PNG, grey, RGBA)."""
    folder = tmp_path_factory.mktemp("pictures")
    shapes = [(90, 60), (40, 100), (64, 64), (120, 80), (50, 50), (70, 110)]
    paths = []
    for seed, size in enumerate(shapes):
        image = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
        draw = ImageDraw.Draw(image)
        for band in range(0, size[0], 12):
            draw.rectangle((band, 0, band + 5, size[1]), fill=((seed * 13 + band) % 256, 40, 200))
        draw.ellipse((seed * 5, seed * 3, seed * 5 + 25, seed * 3 + 25), fill=(250, 250, (seed * 7) % 256))
        if seed == 2:
            image = image.convert("L")
        if seed == 3:
            image = image.convert("RGBA")
        path = folder / (f"{seed}.png" if seed in (2, 3) else f"{seed}.jpg")
        image.save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def model() -> SignatureModel:
    """EfficientNet-Lite0 with the offline ImageNet weights (origin is checked in test_training_backbones)."""
    built, _ = build_model("tf_efficientnet_lite0", weights="auto")
    return built


def naive(model: SignatureModel, paths: list[Path]) -> np.ndarray:
    """One image at a time, fp32, NCHW: the reference."""
    transform = eval_transform(SIZE, *input_normalisation("tf_efficientnet_lite0"))
    model.eval()
    rows = []
    with torch.no_grad():
        for path in paths:
            x = transform(load_rgb(path))[None].contiguous()
            rows.append(model(x)[0].numpy())
    return np.stack(rows)


def test_batched_bf16_channels_last_matches_the_naive_loop(
    model: SignatureModel, pictures: list[Path]
) -> None:
    reference = naive(model, pictures)
    bf16 = extract_signatures(
        model, pictures, batch_size=4, num_workers=0, device="cpu", input_size=SIZE, precision="bf16"
    )
    assert bf16.dtype == np.float32 and bf16.shape == (6, 1280)
    np.testing.assert_allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)
    assert ((bf16 * reference).sum(axis=1) > 0.99).all()
    # The default precision (bf16 only where the CPU computes it natively, else fp32) agrees as closely as
    # that precision allows: fp32 to 0.999, bf16 (8 bits of mantissa) to 0.99.
    auto = extract_signatures(model, pictures, batch_size=4, num_workers=0, device="cpu", input_size=SIZE)
    assert ((auto * reference).sum(axis=1) > (0.99 if cpu_supports_bf16() else 0.999)).all()
    # The rows really are the images in order, not a permutation.
    assert np.argmax(auto @ reference.T, axis=1).tolist() == list(range(6))


def test_worker_processes_agree_with_in_process_loading(model: SignatureModel, pictures: list[Path]) -> None:
    calls: list[tuple[float, str]] = []
    inline = extract_signatures(model, pictures, batch_size=2, num_workers=0, device="cpu", input_size=SIZE)
    workers = extract_signatures(
        model,
        pictures,
        batch_size=2,
        num_workers=2,
        device="cpu",
        input_size=SIZE,
        progress=lambda fraction, message: calls.append((fraction, message)),
    )
    np.testing.assert_allclose(workers, inline, atol=1e-6)
    assert [round(f, 3) for f, _ in calls] == [0.333, 0.667, 1.0]
    assert calls[-1][1] == "signatures: 6/6 images"


def test_should_stop_stops_between_batches(model: SignatureModel, pictures: list[Path]) -> None:
    calls: list[float] = []
    with pytest.raises(ExtractionStopped) as stopped:
        extract_signatures(
            model,
            pictures,
            batch_size=2,
            num_workers=0,
            device="cpu",
            input_size=SIZE,
            progress=lambda fraction, message: calls.append(fraction),
            should_stop=lambda: len(calls) >= 1,
        )
    assert stopped.value.done == 2 and stopped.value.total == 6
    assert len(calls) == 1


@pytest.mark.parametrize("num_workers", [0, 2])
def test_unreadable_image_names_the_file(
    model: SignatureModel, pictures: list[Path], tmp_path: Path, num_workers: int
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a JPEG")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        extract_signatures(
            model, [pictures[0], broken], batch_size=2, num_workers=num_workers, device="cpu", input_size=SIZE
        )


def test_train_mode_is_restored_and_empty_input(model: SignatureModel, pictures: list[Path]) -> None:
    model.train()
    extract_signatures(model, pictures[:2], batch_size=2, num_workers=0, device="cpu", input_size=SIZE)
    assert model.training
    model.eval()
    assert extract_signatures(model, [], device="cpu").shape == (0, 1280)


def _extract_in_daemon(model: SignatureModel, paths: list[Path], conn: Connection) -> None:
    # The parent's OpenMP thread pool does not survive fork: its first parallel region in the child would
    # deadlock. One thread runs the model inline. (A Celery worker forks before any model has run.)
    torch.set_num_threads(1)
    try:
        out = extract_signatures(model, paths, batch_size=2, num_workers=2, device="cpu", input_size=SIZE)
        conn.send(("ok", out.shape))
    except BaseException as exc:  # noqa: BLE001 - report anything to the parent
        conn.send(("error", repr(exc)))
    conn.close()
    # Skip the exit handlers inherited from pytest and from the parent's multiprocessing objects.
    os._exit(0)


def test_daemonic_process_falls_back_to_in_process_loading(
    model: SignatureModel, pictures: list[Path]
) -> None:
    """A Celery prefork child is daemonic and may not start DataLoader workers ("daemonic processes are not
    allowed to have children"): extraction must still work there, loading in-process."""
    assert effective_num_workers(2) == 2
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_extract_in_daemon, args=(model, pictures[:3], sender), daemon=True)
    child.start()
    sender.close()
    try:
        assert receiver.poll(60), "the daemonic child did not answer within 60 s"
        result = receiver.recv()
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert result == ("ok", (3, 1280))


def test_eval_transform_pads_to_a_square_with_neutral_padding(pictures: list[Path]) -> None:
    mean, std = input_normalisation("resnet50")
    tensor = eval_transform(SIZE, mean, std)(load_rgb(pictures[1]))  # 40x100: tall
    assert tensor.shape == (3, SIZE, SIZE)
    # Left and right margins are padding, which normalises to (almost exactly) zero.
    assert tensor[:, :, :5].abs().max() < 0.01 and tensor[:, :, -5:].abs().max() < 0.01
    assert tensor[:, :, SIZE // 2].abs().max() > 0.1


def cpu_flags() -> set[str]:
    """The flags Linux lists for the first CPU; none elsewhere (no AVX-512 kernels to expect there)."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def test_native_bf16_is_what_the_cpu_says(monkeypatch) -> None:
    """bf16 autocast only where the CPU computes bf16 itself: oneDNN emulates it on plain AVX-512, and that
    was slower than fp32 (the docstring of cpu_supports_bf16)."""
    capability = torch.backends.cpu.get_cpu_capability()
    native_flags = {"avx512_bf16", "amx_bf16"} & cpu_flags()
    expected = bool(native_flags) and ("AVX512" in capability or "AMX" in capability)
    assert cpu_supports_bf16() is expected, (capability, native_flags)

    detect = cpu_supports_bf16.__wrapped__  # uncached, to see each pretended CPU afresh
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert detect() is False, "AVX-512 without AVX512_BF16 or AMX is emulation"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert detect() is True
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert detect() is False, "torch does not use AVX-512 kernels here (ATEN_CPU_CAPABILITY or an older CPU)"


def test_devices_and_precision() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    cpu = torch.device("cpu")
    assert resolve_precision(cpu, "fp32") is None
    assert resolve_precision(cpu, "bf16") is torch.bfloat16
    assert resolve_precision(cpu, "auto") is (torch.bfloat16 if cpu_supports_bf16() else None)
    assert resolve_precision(torch.device("cuda"), "auto") is torch.float16
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision(cpu, "fp16")
