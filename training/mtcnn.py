"""MTCNN face detection (Zhang et al. 2016) for paintings, one image at a time.

The networks and the detection pipeline are ported from facenet-pytorch 2.6.0
(https://github.com/timesler/facenet-pytorch, `models/mtcnn.py` and `models/utils/detect_face.py`), whose
pretrained weights we load (`training.face_weights`); the package itself cannot be installed beside our torch
and numpy. The port keeps its layer names, so its state dicts load strictly, and its arithmetic, so the boxes
match the original's (tests/test_training_mtcnn.py checks this against the original code). What differs:

- one image per call, and an image longer than `max_side` is downscaled first (boxes mapped back), so
  memory and time are bounded whatever the painting's size; `min_face_size` counts pixels as searched;
- RNet and ONet crops are cut and run in fixed batches, not all cut first (same results, bounded memory);
- a candidate box lying wholly outside the image is dropped before its crop; the original skipped its crop
  but kept the box, misaligning every later box with its network output;
- the final 'Min' NMS indexes with int64 (the original's int16 overflows past 32767 candidates);
- boxes and landmarks are clipped to the image and at most `max_faces` faces (the most probable) are kept.

facenet-pytorch is under the MIT License:

    Copyright (c) 2019 Timothy Esler

    Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
    associated documentation files (the "Software"), to deal in the Software without restriction, including
    without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
    copies of the Software, and to permit persons to whom the Software is furnished to do so, subject to the
    following conditions:

    The above copyright notice and this permission notice shall be included in all copies or substantial
    portions of the Software.

    THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT
    LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO
    EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER
    IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR
    THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn.functional import interpolate
from torchvision.ops import nms

from .face_weights import PACKAGE, SHA256, VERSION, find_weights

# The study of painting similarity this follows (methods.md §5) ran MTCNN at 0.4 for all three stages: painted
# faces score lower than photographed ones, so the photographic defaults miss many.
PAPER_THRESHOLDS: tuple[float, float, float] = (0.4, 0.4, 0.4)
# facenet-pytorch's defaults, tuned on photographs: the baseline the benchmark compares against.
DETECTOR_DEFAULTS: dict = {"thresholds": (0.6, 0.7, 0.7), "min_face_size": 20, "factor": 0.709}
# PNet looks at 12 px windows: a smaller minimum would upsample the whole image (memory grows with its square)
# to find faces too small to be worth a crop anyway.
SMALLEST_FACE = 12
# RNet/ONet crops per forward pass: bounds memory however many candidates a crowded painting gives.
CROP_BATCH = 256

ImageInput = Image.Image | np.ndarray


class PNet(nn.Module):
    """Proposal network: a fully convolutional 12 px face/no-face classifier with box regression."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.softmax4_1 = nn.Softmax(dim=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.prelu1(self.conv1(x))
        x = self.pool1(x)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        probabilities = self.softmax4_1(self.conv4_1(x))
        regression = self.conv4_2(x)
        return regression, probabilities


class RNet(nn.Module):
    """Refinement network on 24×24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.softmax5_1 = nn.Softmax(dim=1)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # The weights were converted from the Caffe/TensorFlow original, which flattens width-first.
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        probabilities = self.softmax5_1(self.dense5_1(x))
        regression = self.dense5_2(x)
        return regression, probabilities


class ONet(nn.Module):
    """Output network on 48×48 crops: final score, box regression and five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.softmax6_1 = nn.Softmax(dim=1)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        probabilities = self.softmax6_1(self.dense6_1(x))
        regression = self.dense6_2(x)
        landmarks = self.dense6_3(x)
        return regression, landmarks, probabilities


def load_networks(
    weights_dir: str | Path | None = None, device: str | torch.device = "cpu"
) -> tuple[PNet, RNet, ONet]:
    """The three networks with facenet-pytorch's weights, in eval mode on `device`."""
    folder = find_weights(weights_dir)
    networks = (PNet(), RNet(), ONet())
    for name, network in zip(("pnet", "rnet", "onet"), networks, strict=True):
        # weights_only: a state dict needs no pickled code, and refusing code keeps a swapped file harmless.
        state = torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True)
        network.load_state_dict(state, strict=True)
        network.to(device).eval()
    return networks


@dataclass(frozen=True)
class Face:
    """One detected face, in the original image's pixel coordinates."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2
    probability: float
    landmarks: list[tuple[float, float]]  # eyes (left, right in the image), nose, mouth corners (left, right)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


# ---- The pipeline's geometry, as in facenet-pytorch's detect_face.py (boxes: N×(x1, y1, x2, y2, score)) ----


def _imresample(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return interpolate(image, size=size, mode="area")


def _normalise(image: torch.Tensor) -> torch.Tensor:
    return (image - 127.5) * 0.0078125


def _generate_bounding_box(
    regression: torch.Tensor, probabilities: torch.Tensor, scale: float, threshold: float
) -> torch.Tensor:
    """PNet's output map to candidate boxes in the searched image: each cell is a 12 px window, stride 2."""
    stride, cellsize = 2, 12
    regression = regression.permute(1, 0, 2, 3)
    mask = probabilities >= threshold
    mask_inds = mask.nonzero()
    score = probabilities[mask]
    regression = regression[:, mask].permute(1, 0)
    bb = mask_inds[:, 1:].type(regression.dtype).flip(1)
    q1 = ((stride * bb + 1) / scale).floor()
    q2 = ((stride * bb + cellsize - 1 + 1) / scale).floor()
    return torch.cat([q1, q2, score.unsqueeze(1), regression], dim=1)


def _bbreg(boxes: torch.Tensor, regression: torch.Tensor) -> torch.Tensor:
    boxes = boxes.clone()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    b1 = boxes[:, 0] + regression[:, 0] * w
    b2 = boxes[:, 1] + regression[:, 1] * h
    b3 = boxes[:, 2] + regression[:, 2] * w
    b4 = boxes[:, 3] + regression[:, 3] * h
    boxes[:, :4] = torch.stack([b1, b2, b3, b4]).permute(1, 0)
    return boxes


def _rerec(boxes: torch.Tensor) -> torch.Tensor:
    """Square each box around its centre (the networks see square crops)."""
    boxes = boxes.clone()
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    side = torch.max(w, h)
    boxes[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    boxes[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, :2] + side.repeat(2, 1).permute(1, 0)
    return boxes


def _pad(boxes: torch.Tensor, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """1-based inclusive crop bounds clipped to the image (the original's MATLAB heritage)."""
    boxes = boxes.trunc().int().cpu().numpy()
    x, y, ex, ey = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    x[x < 1] = 1
    y[y < 1] = 1
    ex[ex > w] = w
    ey[ey > h] = h
    return y, ey, x, ex


def _nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """The original's NumPy NMS with the 'Min' overlap (intersection over the smaller box): drops a face box
    nested in a larger one, which IoU would keep."""
    if boxes.size == 0:
        return np.empty(0, dtype=np.int64)
    x1, y1, x2, y2 = (boxes[:, i].copy() for i in range(4))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)
    pick = np.zeros_like(scores, dtype=np.int64)
    counter = 0
    while order.size > 0:
        i = order[-1]
        pick[counter] = i
        counter += 1
        rest = order[0:-1]
        xx1 = np.maximum(x1[i], x1[rest])
        yy1 = np.maximum(y1[i], y1[rest])
        xx2 = np.minimum(x2[i], x2[rest])
        yy2 = np.minimum(y2[i], y2[rest])
        inter = np.maximum(0.0, xx2 - xx1 + 1) * np.maximum(0.0, yy2 - yy1 + 1)
        overlap = inter / np.minimum(area[i], area[rest])
        order = order[np.where(overlap <= threshold)]
    return pick[:counter]


def _run_on_crops(
    network: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
    image: torch.Tensor,
    bounds: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    size: int,
) -> tuple[torch.Tensor, ...]:
    """Cut, resample and classify crops CROP_BATCH at a time, so memory does not grow with the candidates."""
    y, ey, x, ex = bounds
    outputs = []
    for start in range(0, len(y), CROP_BATCH):
        crops = [
            _imresample(image[:, :, (y[k] - 1) : ey[k], (x[k] - 1) : ex[k]], (size, size))
            for k in range(start, min(start + CROP_BATCH, len(y)))
        ]
        outputs.append(network(_normalise(torch.cat(crops, dim=0))))
    return tuple(torch.cat(parts, dim=0) for parts in zip(*outputs, strict=True))


def _croppable(
    boxes: torch.Tensor, w: int, h: int
) -> tuple[torch.Tensor, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The boxes whose crop is not empty, and their crop bounds."""
    y, ey, x, ex = _pad(boxes, w, h)
    keep = (ey > y - 1) & (ex > x - 1)
    keep_t = torch.as_tensor(keep, device=boxes.device)
    return boxes[keep_t], (y[keep], ey[keep], x[keep], ex[keep])


def detect_boxes(
    image: torch.Tensor,
    networks: tuple[PNet, RNet, ONet],
    min_face_size: float,
    thresholds: Sequence[float],
    factor: float,
) -> tuple[np.ndarray, np.ndarray]:
    """facenet-pytorch's `detect_face` for one image: `image` is 1×3×H×W float in 0..255 (RGB).

    Returns boxes N×5 (x1, y1, x2, y2, probability) and landmarks N×5×2, most probable first.
    """
    pnet, rnet, onet = networks
    h, w = image.shape[2:4]
    empty = (np.zeros((0, 5), dtype=np.float32), np.zeros((0, 5, 2), dtype=np.float32))

    # Scale pyramid: the first scale maps a min_face_size face onto PNet's 12 px window.
    m = 12.0 / min_face_size
    minl = min(h, w) * m
    scales = []
    scale_i = m
    while minl >= 12:
        scales.append(scale_i)
        scale_i = scale_i * factor
        minl = minl * factor
    if not scales:
        return empty

    # First stage: PNet over every scale, NMS within the scale (0.5), then across scales (0.7).
    candidates = []
    for scale in scales:
        im_data = _normalise(_imresample(image, (int(h * scale + 1), int(w * scale + 1))))
        regression, probabilities = pnet(im_data)
        boxes_scale = _generate_bounding_box(regression, probabilities[:, 1], scale, thresholds[0])
        candidates.append(boxes_scale[nms(boxes_scale[:, :4], boxes_scale[:, 4], 0.5)])
    boxes = torch.cat(candidates, dim=0)
    boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
    if len(boxes) == 0:
        return empty
    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    qq1 = boxes[:, 0] + boxes[:, 5] * regw
    qq2 = boxes[:, 1] + boxes[:, 6] * regh
    qq3 = boxes[:, 2] + boxes[:, 7] * regw
    qq4 = boxes[:, 3] + boxes[:, 8] * regh
    boxes = _rerec(torch.stack([qq1, qq2, qq3, qq4, boxes[:, 4]]).permute(1, 0))

    # Second stage: RNet on 24×24 crops.
    boxes, bounds = _croppable(boxes, w, h)
    if len(boxes) == 0:
        return empty
    regression, probabilities = _run_on_crops(rnet, image, bounds, 24)
    score = probabilities[:, 1]
    passed = score > thresholds[1]
    boxes = torch.cat((boxes[passed, :4], score[passed].unsqueeze(1)), dim=1)
    regression = regression[passed]
    pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
    boxes = _rerec(_bbreg(boxes[pick], regression[pick]))

    # Third stage: ONet on 48×48 crops, with landmarks.
    boxes, bounds = _croppable(boxes, w, h)
    if len(boxes) == 0:
        return empty
    regression, landmarks, probabilities = _run_on_crops(onet, image, bounds, 48)
    score = probabilities[:, 1]
    passed = score > thresholds[2]
    landmarks = landmarks[passed]
    boxes = torch.cat((boxes[passed, :4], score[passed].unsqueeze(1)), dim=1)
    regression = regression[passed]
    # Landmarks are relative to the box ONet saw, before its regression moves it.
    w_i = (boxes[:, 2] - boxes[:, 0] + 1).unsqueeze(1)
    h_i = (boxes[:, 3] - boxes[:, 1] + 1).unsqueeze(1)
    points_x = w_i * landmarks[:, :5] + boxes[:, 0:1] - 1
    points_y = h_i * landmarks[:, 5:10] + boxes[:, 1:2] - 1
    points = torch.stack((points_x, points_y), dim=2)
    boxes = _bbreg(boxes, regression)
    boxes_np = boxes.cpu().numpy()
    pick = _nms_min(boxes_np[:, :4], boxes_np[:, 4], 0.7)
    return boxes_np[pick], points.cpu().numpy()[pick]


def _as_image(image: ImageInput) -> Image.Image | np.ndarray:
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"expected an H×W×3 uint8 RGB array, got shape {image.shape} and dtype {image.dtype}"
            )
        return image
    raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")


class FaceDetector:
    """MTCNN with facenet-pytorch's weights; `detect` one RGB image at a time.

    The defaults are the detector's own (photographs); the workbench runs it at `PAPER_THRESHOLDS` with a
    small `min_face_size`, as the painting study did. An image longer than `max_side` is searched
    downscaled, so `min_face_size` is in pixels of the image as searched; boxes come back in the original's.
    """

    def __init__(
        self,
        weights_dir: str | Path | None = None,
        thresholds: Sequence[float] = DETECTOR_DEFAULTS["thresholds"],
        min_face_size: float = DETECTOR_DEFAULTS["min_face_size"],
        factor: float = DETECTOR_DEFAULTS["factor"],
        device: str | torch.device = "cpu",
        max_side: int = 2048,
        max_faces: int = 500,
    ) -> None:
        thresholds = tuple(float(t) for t in thresholds)
        if len(thresholds) != 3 or not all(0.0 <= t < 1.0 for t in thresholds):
            raise ValueError(f"thresholds must be three probabilities in [0, 1), got {thresholds}")
        if min_face_size < SMALLEST_FACE:
            raise ValueError(
                f"min_face_size must be at least {SMALLEST_FACE} px (PNet's window; smaller would upsample "
                f"the whole image), got {min_face_size}"
            )
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor (the pyramid's scale step) must be in (0, 1), got {factor}")
        if max_side < min_face_size:
            raise ValueError(f"max_side ({max_side}) must be at least min_face_size ({min_face_size})")
        if max_faces < 1:
            raise ValueError(f"max_faces must be at least 1, got {max_faces}")
        self.thresholds = thresholds
        self.min_face_size = min_face_size
        self.factor = factor
        self.device = torch.device(device)
        self.max_side = max_side
        self.max_faces = max_faces
        self.networks = load_networks(weights_dir, self.device)

    def settings(self) -> dict:
        """What produced the faces, to store beside them (results differ with any of these)."""
        return {
            "detector": "mtcnn",
            "weights": f"{PACKAGE} {VERSION}",
            "weights_sha256": dict(SHA256),
            "thresholds": list(self.thresholds),
            "min_face_size": self.min_face_size,
            "factor": self.factor,
            "max_side": self.max_side,
            "max_faces": self.max_faces,
        }

    @torch.no_grad()
    def detect(self, image: ImageInput) -> list[Face]:
        """Faces in one RGB image (PIL image or H×W×3 uint8 array), most probable first."""
        image = _as_image(image)
        if isinstance(image, Image.Image):
            width, height = image.size
        else:
            height, width = image.shape[:2]
        if width == 0 or height == 0:
            return []
        searched = image
        if max(width, height) > self.max_side:
            # Downscale before anything becomes a float tensor: a 6000 px painting would otherwise cost
            # hundreds of MB at the first pyramid level. Box filtering is area averaging, like the pipeline's.
            shrink = self.max_side / max(width, height)
            size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
            pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
            searched = pil.resize(size, Image.Resampling.BOX)
        array = np.asarray(searched, dtype=np.uint8)
        tensor = torch.as_tensor(array.copy(), device=self.device).permute(2, 0, 1).unsqueeze(0).float()
        boxes, points = detect_boxes(tensor, self.networks, self.min_face_size, self.thresholds, self.factor)

        scale_x = width / array.shape[1]
        scale_y = height / array.shape[0]
        order = np.argsort(-boxes[:, 4], kind="stable")
        faces = []
        for i in order:
            x1, x2 = np.clip(boxes[i, [0, 2]] * scale_x, 0, width)
            y1, y2 = np.clip(boxes[i, [1, 3]] * scale_y, 0, height)
            if x2 <= x1 or y2 <= y1:
                continue  # wholly outside the image after regression: nothing to crop or draw
            landmarks = [
                (float(np.clip(px * scale_x, 0, width)), float(np.clip(py * scale_y, 0, height)))
                for px, py in points[i]
            ]
            faces.append(Face((float(x1), float(y1), float(x2), float(y2)), float(boxes[i, 4]), landmarks))
            if len(faces) == self.max_faces:
                break
        return faces
