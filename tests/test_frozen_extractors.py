"""Frozen extractors (methods.md §5): the DINO ViT-S/16 and ConvNeXt-Base loading paths from locally saved
checkpoints (a file given, torch hub's cache), and frozen versions registered from the command line like any
other version; refused without pretrained weights."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from django.core.management import CommandError, call_command

from annotations.importer import import_collection
from training import signatures
from training.backbones import WeightsMismatchError, build_model
from training.models import ModelVersion, NotReviewModel

from .test_training_label_rounds import labelled_source


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache of this test's own."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    yield tmp_path / "hub" / "checkpoints"
    torch.hub.set_dir(previous)


def dino_checkpoint(path) -> torch.nn.Module:
    """A ViT-S/16 saved as DINO's released backbone file is: the bare encoder's keys, no head."""
    torch.manual_seed(0)
    encoder = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0, global_pool="token")
    torch.save(encoder.state_dict(), path)
    return encoder.eval()


def test_dino_loads_from_a_file_and_from_the_hub_cache(tmp_path, hub):
    encoder = dino_checkpoint(tmp_path / "dino.pth")
    images = torch.randn(2, 3, 224, 224)
    model, origin = build_model("dino_vits16", weights_file=tmp_path / "dino.pth")
    assert origin.kind == "file" and model.eval()(images).shape == (2, 384)
    with torch.no_grad():  # the signature is the class token after the final norm, L2-normalised
        expected = torch.nn.functional.normalize(encoder(images), dim=1)
        assert torch.allclose(model(images), expected, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="no pretrained weights found for dino_vits16"):
        build_model("dino_vits16", weights="pretrained")
    (tmp_path / "dino.pth").rename(hub / "dino_deitsmall16_pretrain.pth")  # where torch.hub.load saves it
    model, origin = build_model("dino_vits16", weights="pretrained")
    assert origin.kind == "torchvision-cache" and "dino_deitsmall16_pretrain.pth" in origin.description
    with torch.no_grad():
        assert torch.allclose(model.eval()(images), expected, atol=1e-5)


def test_convnext_base_loads_from_torchvisions_file_name_and_refuses_another_backbones(tmp_path, hub):
    torch.manual_seed(0)
    net = torchvision.models.convnext_base(weights=None).eval()
    torch.save(net.state_dict(), hub / "convnext_base-6075fbad.pth")  # torchvision's cache name
    model, origin = build_model("convnext_base", weights="pretrained")
    assert origin.kind == "torchvision-cache"
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        pooled = net.features(images).mean(dim=(2, 3))
        assert torch.allclose(model.eval()(images), torch.nn.functional.normalize(pooled, dim=1), atol=1e-5)
    dino_checkpoint(tmp_path / "dino.pth")
    with pytest.raises(WeightsMismatchError):
        build_model("convnext_base", weights_file=tmp_path / "dino.pth")


@pytest.mark.django_db(transaction=True)
def test_frozen_versions_from_the_command_line(data_dir, tmp_path, hub, client, django_user_model):
    source = labelled_source(tmp_path / "labelled", count=24)
    import_collection(source / "images", source / "metadata.csv", None, "Labelled")
    call_command("register_frozen", "--backbone", "tf_efficientnet_lite0", "--inline", "--no-map")
    version = ModelVersion.objects.get(method="frozen")
    assert version.signature_dim == 1280 and version.weights_kind == "package"
    assert version.weights_description.startswith("frozen: tf_efficientnet_lite0 ImageNet weights")
    assert not version.is_active and signatures.load(version).vectors.shape == (24, 1280)
    assert "style" in version.metrics["labels"] and "test" in version.metrics
    with pytest.raises(NotReviewModel):
        version.activate()
    call_command("register_frozen", "--backbone", "tf_efficientnet_lite0", "--inline", "--no-map")
    assert ModelVersion.objects.filter(method="frozen").count() == 1  # the same weights: skipped

    with pytest.raises(CommandError, match="no pretrained weights found for dino_vits16"):
        call_command("register_frozen", "--backbone", "dino_vits16", "--inline", "--no-map")
    dino_checkpoint(tmp_path / "dino.pth")
    call_command(
        "register_frozen", "--backbone", "dino_vits16", "--weights", str(tmp_path / "dino.pth"),
        "--inline", "--no-map",
    )  # fmt: skip
    dino = ModelVersion.objects.get(method="frozen", backbone="dino_vits16")
    assert dino.signature_dim == 384 and dino.weights_kind == "file"

    client.force_login(django_user_model.objects.create_user("historian", password="pw"))
    artwork = signatures.load(dino).ids[0]
    page = client.get(f"/search/?model={dino.number}&compare={version.number}&artwork={artwork}")
    assert [len(column["results"]) for column in page.context["columns"]] == [23, 23]
    assert "Frozen extractor" in client.get("/rounds/").content.decode()
