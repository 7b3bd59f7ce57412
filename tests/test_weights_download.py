"""Published weights a user can get (issue 15, item 5): where the machine is online, torchvision's weights
are downloaded the way torchvision does it (into torch hub's cache, under its file name, hash-checked), and
found there offline afterwards; offline or with downloads off, a clear message naming the file to place. A
local HTTP server stands in for download.pytorch.org."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading

import pytest
import torch
import torchvision

from training import backbones
from training.backbones import build_model


@pytest.fixture
def hub(tmp_path):
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub" / "checkpoints"
    torch.hub.set_dir(previous)


@pytest.fixture
def server(tmp_path):
    """A static file server on 127.0.0.1 over `tmp_path / "www"`, counting its requests."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):  # noqa: N802 - the stdlib's name
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()


def published(root, name_for_hash) -> tuple[str, torch.nn.Module]:
    """EfficientNet-B0 weights saved as torchvision publishes them: named <arch>-<sha256 prefix>.pth."""
    torch.manual_seed(0)
    net = torchvision.models.efficientnet_b0(weights=None).eval()
    scratch = root / "scratch.pth"
    torch.save(net.state_dict(), scratch)
    digest = hashlib.sha256(scratch.read_bytes()).hexdigest()
    name = name_for_hash(digest)
    scratch.rename(root / name)
    return name, net


def test_downloaded_once_into_torchvisions_cache_then_found_offline(hub, server, monkeypatch):
    root, base, requests = server
    name, net = published(root, lambda digest: f"efficientnet_b0-{digest[:8]}.pth")
    monkeypatch.setenv("WORKBENCH_DOWNLOAD_WEIGHTS", "1")
    monkeypatch.setattr(backbones, "download_urls", lambda backbone: [f"{base}/{name}"])
    model, origin = build_model("efficientnet_b0", weights="pretrained")
    assert origin.kind == "download" and f"downloaded from {base}/{name}" in origin.description
    assert (hub / name).is_file() and requests == [f"/{name}"]
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        pooled = net.features(images).mean(dim=(2, 3))
        assert torch.allclose(model.eval()(images), torch.nn.functional.normalize(pooled, dim=1), atol=1e-5)
    # Offline from now on: the cache has it under the same name.
    monkeypatch.setenv("WORKBENCH_DOWNLOAD_WEIGHTS", "0")
    _, again = build_model("efficientnet_b0", weights="pretrained")
    assert again.kind == "torchvision-cache" and requests == [f"/{name}"]


def test_a_damaged_download_is_refused_and_leaves_nothing(hub, server, monkeypatch):
    root, base, _ = server
    name, _ = published(root, lambda digest: "efficientnet_b0-00000000.pth")  # the hash does not match
    monkeypatch.setenv("WORKBENCH_DOWNLOAD_WEIGHTS", "1")
    monkeypatch.setattr(backbones, "download_urls", lambda backbone: [f"{base}/{name}"])
    with pytest.raises(FileNotFoundError, match="the download failed") as refused:
        build_model("efficientnet_b0", weights="pretrained")
    assert "invalid hash value" in str(refused.value)
    assert not (hub / name).exists() and not list(hub.glob("*"))  # no partial file to be taken for weights
    _, origin = build_model("efficientnet_b0", weights="auto")
    assert origin.kind == "random" and "RANDOMLY INITIALISED" in origin.description


def test_offline_or_switched_off_a_message_names_the_file_to_place(hub, server, monkeypatch):
    _, base, requests = server
    with socket.socket() as probe:  # a port nobody listens on: the machine is "offline"
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    url = f"http://127.0.0.1:{closed}/efficientnet_b0-12345678.pth"
    monkeypatch.setattr(backbones, "download_urls", lambda backbone: [url])
    monkeypatch.setenv("WORKBENCH_DOWNLOAD_WEIGHTS", "1")
    with pytest.raises(FileNotFoundError) as offline:
        build_model("efficientnet_b0", weights="pretrained")
    message = str(offline.value)
    assert (
        "the download failed" in message
        and f"Place {url} as {hub / 'efficientnet_b0-12345678.pth'}" in message
    )
    monkeypatch.setenv("WORKBENCH_DOWNLOAD_WEIGHTS", "0")
    monkeypatch.setattr(backbones, "download_urls", lambda backbone: [f"{base}/efficientnet_b0-12345678.pth"])
    with pytest.raises(FileNotFoundError, match=r"downloads are off \(WORKBENCH_DOWNLOAD_WEIGHTS=0\)"):
        build_model("efficientnet_b0", weights="pretrained")
    assert requests == []  # switched off: not even tried


def test_every_torchvision_backbone_and_dino_has_a_published_address():
    for backbone in ("resnet50", "resnext50_32x4d", "resnext101_32x8d", "efficientnet_b0", "convnext_base"):
        (url,) = backbones.download_urls(backbone)
        assert url.startswith("https://download.pytorch.org/models/") and url.endswith(".pth")
        # Downloaded under the name the cache is searched for.
        assert url.rsplit("/", 1)[1] in {path.name for path in backbones.cache_candidates(backbone)}
    assert backbones.download_urls("dino_vits16") == [
        "https://dl.fbaipublicfiles.com/dino/dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth"
    ]
    assert backbones.download_urls("tf_efficientnet_lite0") == []  # offline package


@pytest.fixture
def hf_hub(tmp_path, monkeypatch):
    """A stand-in for the Hugging Face hub on 127.0.0.1 (HF_ENDPOINT): `resolve/main/<file>` answers HEAD
    and GET with the headers huggingface_hub reads (the commit, the ETag, the length), over a cache of the
    test's own."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    files: dict[str, bytes] = {}
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self, body: bool) -> None:
            requests.append(f"{self.command} {self.path}")
            repository, _, filename = self.path.lstrip("/").partition("/resolve/main/")
            data = files.get(f"{repository}/{filename}")
            if data is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("X-Repo-Commit", "c0ffee" * 6 + "c0ff")
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self):  # noqa: N802 - the stdlib's name
            self.answer(False)

        def do_GET(self):  # noqa: N802
            self.answer(True)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{httpd.server_address[1]}")
    yield files, requests
    httpd.shutdown()
    httpd.server_close()


def test_timm_weights_come_from_the_hugging_face_hub_and_are_found_offline(hf_hub, monkeypatch, tmp_path):
    import timm
    from safetensors.torch import save_file

    files, requests = hf_hub
    repository, filename = backbones.timm_hub_file("vit_tiny_patch16_224")
    assert (repository, filename) == ("timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k", "model.safetensors")
    # The multitask model's ViT-B/16 is MAE's encoder (methods.md §2), not timm's default supervised tag.
    assert backbones.timm_hub_file("vit_base_patch16_224") == (
        "timm/vit_base_patch16_224.mae",
        "model.safetensors",
    )
    torch.manual_seed(3)
    published_net = timm.create_model("vit_tiny_patch16_224", pretrained=False)  # with its ImageNet head
    save_file(published_net.state_dict(), str(tmp_path / "model.safetensors"))
    files[f"{repository}/{filename}"] = (tmp_path / "model.safetensors").read_bytes()

    monkeypatch.setenv("WORKBENCH_DOWNLOAD_WEIGHTS", "1")
    model, origin = build_model("vit_tiny_patch16_224", "pretrained")
    assert origin.kind == "download" and repository in origin.description
    assert requests == [
        f"HEAD /{repository}/resolve/main/{filename}",
        f"GET /{repository}/resolve/main/{filename}",
    ]
    assert torch.equal(model.trunk.patch_embed.proj.weight, published_net.patch_embed.proj.weight)

    monkeypatch.setenv("WORKBENCH_DOWNLOAD_WEIGHTS", "0")  # offline from now on: the cache is enough
    requests.clear()
    again, origin = build_model("vit_tiny_patch16_224", "pretrained")
    assert origin.kind == "hf-cache" and requests == []
    assert torch.equal(again.trunk.blocks[0].attn.qkv.weight, published_net.blocks[0].attn.qkv.weight)


def test_without_the_hub_a_timm_backbone_says_what_to_download(hf_hub, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DOWNLOAD_WEIGHTS", "1")
    with socket.socket() as closed:  # a port nothing listens on: the hub cannot be reached
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed.getsockname()[1]}")
    _, origin = build_model("vit_tiny_patch16_224", "auto")
    where = (
        "https://huggingface.co/timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k/resolve/main/model.safetensors"
    )
    assert (
        origin.kind == "random" and "cannot be reached" in origin.description and where in origin.description
    )
    monkeypatch.setenv("WORKBENCH_DOWNLOAD_WEIGHTS", "0")
    with pytest.raises(FileNotFoundError, match=r"downloads are off \(WORKBENCH_DOWNLOAD_WEIGHTS=0\)"):
        build_model("vit_tiny_patch16_224", "pretrained")
