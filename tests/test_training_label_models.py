"""Label-supervised models (plain PyTorch): trunks cut into stages, the ViT loading path with a locally saved
MAE-style checkpoint, the heads, and a small training on generated images that learns, checkpoints and
resumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.backbones import WeightsMismatchError, build_model
from training.label_models import build_label_model, freeze_below, layer_ids, trunk_stages
from training.label_trainer import LabelData, LabelTrainConfig, fit, signatures_for
from training.labels import encode_task, label_precision


@pytest.mark.parametrize("backbone", ["tf_efficientnet_lite0", "efficientnet_b0", "resnet50"])
def test_the_stages_compose_to_the_trunk(backbone):
    model, _ = build_model(backbone, "none")
    model.eval()
    images = torch.randn(2, 3, 64, 64)
    stages = trunk_stages(model.trunk)
    assert stages is not None and len(stages) >= 5
    features = images
    with torch.no_grad():
        for stage in stages:
            features = stage(features)
        assert torch.allclose(features, model.trunk(images), atol=1e-5)
    # Every trunk parameter belongs to one stage: layer-wise decay and freezing see them all.
    owned = sum(p.numel() for stage in stages for p in stage.parameters())
    assert owned == sum(p.numel() for p in model.trunk.parameters())


def test_the_style_classifier_signature_is_the_256_layer_and_the_multitask_one_the_descriptor():
    classifier, origin = build_label_model("style-classifier", "tf_efficientnet_lite0", [5], weights="none")
    assert origin.kind == "random" and classifier.dim == 256
    multitask, _ = build_label_model("multitask-knn", "tf_efficientnet_lite0", [5, 3], weights="none")
    assert multitask.dim == 1280 and len(multitask.heads) == 2
    images = torch.randn(3, 3, 64, 64)
    for model in (classifier, multitask):
        model.eval()
        with torch.no_grad():
            signatures = model(images)
            z, logits = model.forward_train(images)
        assert signatures.shape == (3, model.dim)
        assert torch.allclose(signatures.norm(dim=1), torch.ones(3), atol=1e-5)
        assert torch.allclose(signatures, torch.nn.functional.normalize(z, dim=1), atol=1e-5)
    assert [tuple(x.shape) for x in logits] == [(3, 5), (3, 3)]


def test_freezing_keeps_the_top_stages_trainable():
    model, _ = build_label_model("style-classifier", "tf_efficientnet_lite0", [4], weights="none")
    frozen = freeze_below(model, 2)
    assert frozen == len(model.stages) - 2
    assert not any(p.requires_grad for stage in model.stages[:frozen] for p in stage.parameters())
    assert all(p.requires_grad for stage in model.stages[frozen:] for p in stage.parameters())
    assert freeze_below(model, 0) == len(model.stages)
    assert not any(p.requires_grad for p in model.trunk.parameters())
    assert all(p.requires_grad for p in model.heads.parameters())
    assert freeze_below(model, -1) == 0 and all(p.requires_grad for p in model.trunk.parameters())


def test_a_vit_loads_an_mae_encoder_checkpoint_saved_locally(tmp_path):
    """MAE's pretraining file holds the encoder with its final `norm`, the decoder and the mask token. The
    multitask descriptor (mean of patch tokens → fc_norm) takes the encoder; fc_norm starts as identity."""
    import timm

    encoder = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    state["mask_token"] = torch.zeros(1, 1, 192)
    state["decoder_embed.weight"] = torch.zeros(128, 192)
    path = tmp_path / "mae_pretrain_vit_tiny.pth"
    torch.save({"model": state}, path)

    model, origin = build_label_model(
        "multitask-knn", "vit_tiny_patch16_224", [3, 2], weights="auto", weights_file=str(path)
    )
    assert origin.kind == "file" and "MAE encoder" in origin.description
    loaded = model.trunk.state_dict()
    assert torch.equal(loaded["blocks.11.mlp.fc2.weight"], state["blocks.11.mlp.fc2.weight"])
    assert torch.equal(loaded["pos_embed"], state["pos_embed"])
    assert torch.equal(loaded["fc_norm.weight"], torch.ones(192))
    assert model.dim == 192 and model.stages is None
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 192)
    # Layer-wise decay sees 12 blocks between the embedding (0) and the head side (13).
    ids = layer_ids(model.trunk)
    assert ids["patch_embed.proj.weight"] == 0 and ids["blocks.11.attn.qkv.weight"] == 12
    assert ids["fc_norm.weight"] == 13

    broken = dict(state)
    broken["blocks.0.attn.qkv.weight"] = torch.zeros(5, 5)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(WeightsMismatchError, match="blocks.0.attn.qkv.weight"):
        build_label_model(
            "multitask-knn", "vit_tiny_patch16_224", [3], weights_file=str(tmp_path / "broken.pth")
        )


def coloured_set(folder: Path, count: int = 48) -> tuple[list[str], list[str], list[str]]:
    """Style = dominant colour; genre = horizontal stripes or none; noise everywhere."""
    rng = np.random.default_rng(0)
    paths, styles, genres = [], [], []
    for i in range(count):
        style, genre = i % 3, (i // 3) % 2
        pixels = rng.integers(0, 60, (48, 48, 3))
        pixels[..., style] += 150
        if genre:
            pixels[::6] = 240
        path = folder / f"{i}.png"
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path)
        paths.append(str(path))
        styles.append("RGB"[style])
        genres.append("striped" if genre else "plain")
    return paths, styles, genres


@pytest.mark.parametrize("method", ["style-classifier", "multitask-knn", "backward-search"])
def test_training_on_generated_images_learns_the_labels_and_resumes(tmp_path, method):
    paths, styles, genres = coloured_set(tmp_path)
    labels = ["style"] if method == "style-classifier" else ["style", "genre"]
    tasks = [encode_task("style", styles), encode_task("genre", genres)][: len(labels)]
    rows = np.arange(len(paths))
    data = LabelData(paths, tasks, train=rows[:30], val=rows[30:39], test=rows[39:])
    config = LabelTrainConfig(
        method=method, labels=labels, weights="none", input_size=48, stage1_epochs=3,
        # Backward Search's deeper heads need more steps for their BatchNorm statistics to settle.
        epochs=12 if method == "backward-search" else 3,
        batch_size=10, augment="none", trainable_stages=1, num_workers=0, extraction_batch_size=16,
        stage1_lr=3e-3, lr=1e-3, base_lr=2e-3, warmup_epochs=0,
    )  # fmt: skip
    checkpoints = tmp_path / "checkpoints"
    result = fit(config, data, checkpoints)
    total = {"style-classifier": 6, "multitask-knn": 3, "backward-search": 12}[method]
    if method == "backward-search":  # its heads and z: 256 → 256 → 128 → C, 256-d (methods.md §4)
        assert result.model.dim == 256 and len(result.model.heads[0]) == 9
        assert result.test is not None and result.test.accuracy["style"] > 0.6
    assert len(result.history) == total and (checkpoints / "last.pt").exists()
    assert result.test is not None and result.test.precision[0].n_queries == 9
    vectors = signatures_for(result.model, paths, config)
    assert vectors.shape == (48, result.model.dim)
    # Even from random weights, a few epochs on colour classes put each image beside its own style more
    # often than the 1/3 of chance.
    assert label_precision(vectors, tasks[0].targets, "style").precision[1] > 0.6
    # Starting again with the same settings resumes after the last epoch instead of training again.
    lines: list[str] = []
    again = fit(config, data, checkpoints, log=lines.append)
    assert any(f"resumed after epoch {total}" in line for line in lines)
    assert again.history == result.history and again.best_epoch == result.best_epoch
