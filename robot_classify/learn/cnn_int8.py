"""INT8 EfficientNet-Lite0 trunk: the checked fp32 graph (`cnn_onnx`) statically quantised by ONNX
Runtime, calibrated on crops made here, and checked against the fp32 graph before it is cached.

Why: on one CPU thread the network is nearly all of a `cnn_color` frame's time, and 8-bit
convolutions (VNNI on this Xeon, pmaddubsw on plain AVX2) do about twice the work per instruction
of fp32 ones. EfficientNet-Lite was designed for this (ReLU6, no squeeze-excite, so activations
have a fixed range).

How (measured choices, doc/training.md "ConvNet features"): QDQ format, weights int8 per output
channel, activations uint8 per tensor (u8s8, what MLAS's fast kernels take), the ranges from the
moving average of each calibration batch's min/max (plain min/max let a few outlier pixels widen
the ranges: on the recipe's held-out crops, every layer int8, mean cosine to fp32 0.965 against
0.990), the stem and block 0 kept fp32 (`FP32_NODES`). Resize, scaling, pooling and the L2 norm stay
fp32 (they are not quantisable ops here and cost little).

The calibration crops (`calibration_crops`) are drawn here, deterministically, like the recipe's:
one shaded object (box, cylinder, thin marker, mug) with a band and print-like marks, on the grey
background the node's masked crops have. Nothing is read from disk or downloaded, so any
machine builds the same graph from the same weights; `CALIBRATION_VERSION` is in the cache key.

The check (`check`): the int8 graph and the fp32 graph embed the fp32 check crops and
`check_images()` (calibration-like crops of another seed, none used for calibration); the mean cosine must
reach `MIN_MEAN_COSINE` and every crop's `MIN_COSINE`, or the graph is refused (the fp32 graph
runs instead, with one warning).
"""
from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path

import numpy as np

CALIBRATION_VERSION = 1  # bump when the crops, their number or the quantisation settings change
CALIBRATION_CROPS = 240
CALIBRATION_BATCH = 20  # the moving average is over batches: part of what the ranges depend on
MIN_MEAN_COSINE = 0.97  # measured on the recipe's held-out crops: 0.990 (lowest crop 0.92)
MIN_COSINE = 0.80
PATCH = 32
# Kept fp32: the stem and block 0 (names in the exported graph). The stem's 32-channel output at
# full resolution and block 0's 16-channel linear bottleneck lose most in 8 bits: quantised, the
# recipe's held-out crops kept a mean cosine of 0.984 to fp32 (lowest 0.89); with these fp32,
# 0.996 (lowest 0.976), at the same speed (they are under 6% of the multiply-adds).
FP32_NODES: tuple[str, ...] = ("/_conv_stem/Conv", "/_blocks.0/_depthwise_conv/Conv", "/_blocks.0/_project_conv/Conv")


def calibration_crops(n: int = CALIBRATION_CROPS, seed: int = 0) -> np.ndarray:
    """(n, 32, 32, 3) uint8 RGB object crops, the same for the same (n, seed) on every machine."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.empty((n, PATCH, PATCH, 3), np.uint8)
    scale = 8  # draw at 256 px, area-average to 32: anti-aliased edges like a rendered crop's
    big = PATCH * scale
    for i in range(n):
        img = np.full((big, big, 3), rng.uniform(105, 150), np.float32)
        mask = np.zeros((big, big), np.uint8)
        cx, cy = rng.uniform(0.35, 0.65, 2) * big
        shape = rng.choice(["box", "cylinder", "marker", "mug"], p=[0.35, 0.3, 0.15, 0.2])
        angle = rng.uniform(0, 180)
        if shape == "marker":
            w, h = rng.uniform(0.7, 1.0) * big, rng.uniform(0.08, 0.18) * big
        else:
            w, h = rng.uniform(0.35, 0.85, 2) * big
        box = cv2.boxPoints(((cx, cy), (w, h), angle)).astype(np.int32)
        cv2.fillPoly(mask, [box], 1)
        if shape in ("cylinder", "mug"):  # rounded ends
            for end in (-1, 1):
                a = np.deg2rad(angle + 90)
                c = (int(cx + end * np.cos(a) * h / 2), int(cy + end * np.sin(a) * h / 2))
                cv2.ellipse(mask, (c, (int(w), int(w * rng.uniform(0.2, 0.5))), angle), 1, -1)
        if shape == "mug":  # a handle
            cv2.ellipse(mask, ((int(cx + w * 0.55), int(cy)), (int(w * 0.35), int(h * 0.4)), 0), 1,
                        int(big * 0.03))
        hsv = np.uint8([[[rng.integers(0, 180), rng.integers(60, 256), rng.integers(70, 256)]]])
        base = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
        colour = np.broadcast_to(base, img.shape).copy()
        yy, xx = np.mgrid[0:big, 0:big] / big
        d = rng.normal(size=2)
        shade = 0.75 + 0.45 * ((xx * d[0] + yy * d[1]) - (0.5 * d.sum())) / (np.abs(d).sum() + 1e-6)
        if shape in ("cylinder", "mug"):  # the highlight across a curved side
            shade = shade + 0.35 * np.exp(-(((xx - cx / big) * 4) ** 2))
        if rng.random() < 0.7:  # a band of a second colour (a label)
            hsv2 = np.uint8([[[rng.integers(0, 180), rng.integers(0, 256), rng.integers(40, 256)]]])
            lo = rng.uniform(0.2, 0.6)
            band = (yy > lo) & (yy < lo + rng.uniform(0.1, 0.35))
            colour[band] = cv2.cvtColor(hsv2, cv2.COLOR_HSV2RGB)[0, 0]
            if rng.random() < 0.6:  # print on it: dark or light marks
                marks = rng.random((big // 16, big // 16)) < 0.3
                marks = cv2.resize(marks.astype(np.uint8), (big, big), interpolation=cv2.INTER_NEAREST) > 0
                colour[band & marks] = rng.choice([20.0, 235.0])
        obj = np.clip(colour * np.clip(shade, 0.3, 1.6)[..., None], 0, 255)
        img = np.where(mask[..., None] > 0, obj, img)
        small = cv2.resize(img, (PATCH, PATCH), interpolation=cv2.INTER_AREA)
        out[i] = np.clip(small + rng.normal(0, 3, small.shape), 0, 255).astype(np.uint8)
    return out


def check_images() -> np.ndarray:
    """Calibration-like crops of another seed (never calibrated on): with the fp32 check crops
    (`cnn_onnx.check_crops`), what the int8 graph is checked on."""
    return calibration_crops(48, seed=1)


@contextlib.contextmanager
def _quiet_root_logger():
    """ONNX Runtime's quantiser reports each weight scale it widens with `logging.info` on the
    root logger: 76 lines on a newcomer's first demo, where the CLI logs at INFO. Only warnings
    and errors pass while it runs."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def quantize(fp32_graph: bytes) -> bytes:
    """The fp32 graph statically quantised (module docstring): batch-norms folded into the
    convolutions first (`quant_pre_process`), then QDQ int8 with ranges from `calibration_crops`."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    crops = calibration_crops()

    class Crops(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(crops[i:i + CALIBRATION_BATCH] for i in range(0, len(crops), CALIBRATION_BATCH))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"patches": batch}

    with tempfile.TemporaryDirectory(prefix="robot_classify_int8_") as tmp:
        src, pre, out = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32_graph)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)  # the same graph; symbolic: 13 s
        with _quiet_root_logger():
            quantize_static(str(pre), str(out), Crops(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=list(FP32_NODES), extra_options={"CalibMovingAverage": True})
        onnx.checker.check_model(str(out))
        return out.read_bytes()


def drift(reference: np.ndarray, got: np.ndarray) -> tuple[float, float, float]:
    """(mean cosine, lowest cosine, largest |difference| per component) between unit embeddings."""
    cos = (reference.astype(np.float64) * got).sum(1)
    return float(cos.mean()), float(cos.min()), float(np.abs(reference - got).max())


def check(reference: np.ndarray, got: np.ndarray) -> None:
    """Refuses (RuntimeError, one line) int8 embeddings that drift too far from the fp32 ones."""
    mean, lowest, diff = drift(reference, got)
    if not (mean >= MIN_MEAN_COSINE and lowest >= MIN_COSINE):
        raise RuntimeError(f"the INT8 graph drifts from fp32: mean cosine {mean:.4f} (needs >= {MIN_MEAN_COSINE}), "
                           f"lowest {lowest:.4f} (needs >= {MIN_COSINE}), largest difference {diff:.3f}")
