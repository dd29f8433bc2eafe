"""The EfficientNet-Lite0 trunk (`cnn_trunk.embed`) on ONNX Runtime: the same embeddings, about 3x
faster than PyTorch eager on a small CPU (doc/training.md, "ConvNet features").

PyTorch eager runs a fixed network op by op through a general-purpose dispatcher; ONNX Runtime
fuses each convolution with its batch-norm and ReLU6, picks kernels for this CPU once, and runs
the whole graph (upsampling and scaling included: uint8 patches in, unit embeddings out) with
little overhead per call, which is what a 10-patch frame pays for.

The graph is made here, never downloaded: `cnn_trunk.embed` on the shipped, checksum-checked weights
is traced by `torch.onnx.export` into the cache (`cache.cache_dir()`), then run on fixed crops
by both engines. A graph whose output differs from PyTorch's by more than `MAX_DIFF` in any
component is refused: PyTorch runs instead, with one warning. The file name carries a key
derived from the weights' sha256, the trunk's settings and the versions of this export code,
torch, onnx and onnxruntime, so any change makes a new file; a sha256 beside it is checked on
every load, and a file that fails it is rebuilt.

Which engine: `ROBOT_CLASSIFY_CNN_ENGINE` = auto (default: ONNX Runtime on CPU when it is
installed, PyTorch otherwise, and on CUDA, where PyTorch replays captured graphs, `cnn_cuda`)
| onnxruntime | torch. The choice is the process's, not the model file's: files
store only `size` and `layer`, and load the same either way.

Which precision on ONNX Runtime: `ROBOT_CLASSIFY_CNN_PRECISION` = auto (default: int8 on CPU) |
int8 | fp32. The int8 graph (`cnn_int8`: the fp32 graph statically quantised, calibrated on crops
drawn here, checked against fp32) is cached beside the fp32 one, its key adding the precision and
the calibration's version. Its embeddings differ from fp32's a little (mean cosine ~0.996), so kNN
indexes built on fp32 embeddings keep working: measured label agreement and accuracy are in
doc/training.md. A refused int8 graph leaves the fp32 graph running, with one warning. PyTorch
runs fp32 only: int8 asked for explicitly with the PyTorch engine is an error.

Threads follow `torch.get_num_threads()`, the knob the node already turns to one per worker:
ONNX Runtime gets that many intra-op threads, one inter-op thread, sequential execution.
Concurrent workers share one session per (size, layer, device, threads) (`run` is thread-safe).
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import threading
import warnings
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from . import cnn_int8, cnn_trunk
from .cache import cache_dir

ENGINE_ENV = "ROBOT_CLASSIFY_CNN_ENGINE"
ENGINES = ("auto", "onnxruntime", "torch")
PRECISION_ENV = "ROBOT_CLASSIFY_CNN_PRECISION"
PRECISIONS = ("auto", "int8", "fp32")
EXPORT_VERSION = 1  # bump when the export or the graph's contract changes: old files are then not used
OPSET = 17
PATCH = 32  # the graph's input is (N, PATCH, PATCH, 3) uint8; other shapes go to PyTorch
MAX_DIFF = 1e-4  # largest |difference| per embedding component accepted against PyTorch
BATCH = 256  # patches per run (activations grow with size^2)

_lock = threading.Lock()
_trunks: dict[tuple, "OrtTrunk | None"] = {}
_warned: set[str] = set()
_ort_importable: bool | None = None


def _onnxruntime_importable() -> bool:
    global _ort_importable
    if _ort_importable is None:
        try:
            import onnxruntime  # noqa: F401
            _ort_importable = True
        except ImportError:
            _ort_importable = False
    return _ort_importable


def _asked(env: str, choices: tuple[str, ...]) -> str:
    """What the environment variable `env` asks for (unset or empty: "auto"), one of `choices`."""
    asked = os.environ.get(env, "auto").strip().lower() or "auto"
    if asked not in choices:
        raise ValueError(f"{env}={asked!r}: must be one of {choices}")
    return asked


def engine(device: str) -> str:
    """The engine `cnn` features use on `device` in this process: "onnxruntime" or "torch"."""
    asked = _asked(ENGINE_ENV, ENGINES)
    if asked == "torch":
        return "torch"
    if asked == "onnxruntime":
        if not _onnxruntime_importable():
            raise ValueError(f"{ENGINE_ENV}=onnxruntime but onnxruntime is not installed (pip install onnxruntime)")
        return "onnxruntime"
    return "onnxruntime" if str(device) == "cpu" and _onnxruntime_importable() else "torch"


def slow_engine_note(device: str) -> str | None:
    """Why the features run on PyTorch where ONNX Runtime was the choice, or None: a ROS workspace
    whose pip line left onnxruntime out labelled at a third of the speed without a word (found
    from outside)."""
    if _asked(ENGINE_ENV, ENGINES) != "auto" or str(device) != "cpu" or _onnxruntime_importable():
        return None
    return ("onnxruntime does not import: the ConvNet features run on PyTorch, about 3x slower "
            "(pip install onnxruntime onnx)")


def precision(device: str) -> str:
    """The precision `cnn` features run at on `device` in this process: "int8" or "fp32" (PyTorch: fp32)."""
    asked = _asked(PRECISION_ENV, PRECISIONS)
    on_ort = engine(device) == "onnxruntime"
    if asked == "int8" and not on_ort:
        raise ValueError(f"{PRECISION_ENV}=int8 needs the onnxruntime engine; the cnn features run on torch here "
                         f"({ENGINE_ENV}, device {device})")
    if asked == "auto":
        return "int8" if on_ort else "fp32"
    return asked


@functools.lru_cache(maxsize=None)
def _version(package: str) -> str:
    """major.minor of an installed package; looked up once (a metadata scan costs ms: every frame
    asks for the cache key)."""
    try:
        return ".".join(metadata.version(package).split(".")[:2])
    except metadata.PackageNotFoundError:
        return "none"


def cache_key(size: int, layer: str, precision: str = "fp32") -> str:
    """What the exported file depends on; a change in any of these makes (and checks) a new one."""
    _check_precision(precision)
    parts = {"weights_sha256": cnn_trunk.PTH_SHA256, "size": size, "layer": layer, "patch": PATCH, "export": EXPORT_VERSION,
             "opset": OPSET, "torch": _version("torch"), "onnx": _version("onnx"),
             "onnxruntime": _version("onnxruntime"), "precision": precision}
    if precision == "int8":
        parts["calibration"] = cnn_int8.CALIBRATION_VERSION
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _check_precision(precision: str) -> None:
    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")


def onnx_path(size: int, layer: str, precision: str = "fp32") -> Path:
    return cache_dir() / f"efficientnet-lite0-{size}px-{layer}-{precision}-{cache_key(size, layer, precision)}.onnx"


def check_crops() -> np.ndarray:
    """Fixed crops both engines must agree on: noise, gradients, edges, flat grey/black/white and
    a coloured object on a table-like background (the kinds of input the node sees)."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (4, PATCH, PATCH, 3), dtype=np.uint8)
    ramp = np.linspace(0, 255, PATCH, dtype=np.float32)
    grad = np.stack([np.broadcast_to(ramp, (PATCH, PATCH)), np.broadcast_to(ramp[:, None], (PATCH, PATCH)),
                     np.full((PATCH, PATCH), 128.0)], -1)
    checker = ((np.indices((PATCH, PATCH)) // 4).sum(0) % 2 * 255)[..., None].repeat(3, -1)
    flat = [np.full((PATCH, PATCH, 3), v) for v in (0, 127, 255)]
    blob = np.full((PATCH, PATCH, 3), (150, 140, 120))
    blob[6:26, 9:23] = (40, 170, 60)
    smooth = np.clip(blob + rng.normal(0, 12, blob.shape), 0, 255)
    return np.concatenate([noise, np.stack([grad, checker, *flat, blob, smooth]).astype(np.uint8)])


def _export(size: int, layer: str) -> bytes:
    """`cnn_trunk.embed` at (size, layer) traced to ONNX: uint8 NHWC in, unit embeddings out, batch dynamic."""
    import torch

    from .cnn_trunk import backbone, embed

    class Trunk(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = backbone("cpu")

        def forward(self, x):
            return embed(self.net, x, size, layer)

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(Trunk().eval(), (torch.zeros((2, PATCH, PATCH, 3), dtype=torch.uint8),), buf,
                          input_names=["patches"], output_names=["embedding"],
                          dynamic_axes={"patches": {0: "n"}, "embedding": {0: "n"}},
                          opset_version=OPSET, dynamo=False, do_constant_folding=True)
    return buf.getvalue()


def _torch_reference(images: np.ndarray, size: int, layer: str) -> np.ndarray:
    import torch

    from .cnn_trunk import backbone, embed

    with torch.inference_mode():
        return embed(backbone("cpu"), torch.from_numpy(images), size, layer).numpy()


def max_difference(graph: bytes, size: int, layer: str) -> float:
    """Largest |ONNX Runtime - PyTorch| over every component of the check crops' embeddings."""
    crops = check_crops()
    got = OrtTrunk(graph, threads=1, device="cpu")(crops)
    return float(np.abs(got - _torch_reference(crops, size, layer)).max())


def _write_atomic(dest: Path, data: bytes) -> None:
    """The file, then its sha256 beside it, each written to a temporary name and renamed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for path, payload in ((dest, data), (dest.with_name(dest.name + ".sha256"),
                                         hashlib.sha256(data).hexdigest().encode())):
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(payload)
        tmp.replace(path)


def _read_verified(path: Path) -> bytes | None:
    """The cached graph if it is there and matches its sha256 sidecar, else None (rebuild)."""
    digest = path.with_name(path.name + ".sha256")
    try:
        data, expected = path.read_bytes(), digest.read_text().strip()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == expected else None


def build(size: int, layer: str, precision: str = "fp32") -> bytes:
    """The checked graph for (size, layer, precision): from the cache, or made, checked and cached.
    fp32: exported, refused (RuntimeError naming the difference) unless it matches PyTorch;
    int8: the fp32 graph quantised, refused unless it stays close to fp32 (`cnn_int8.check`)."""
    path = onnx_path(size, layer, precision)
    data = _read_verified(path)
    if data is None:
        if precision == "int8":
            data = _quantized(size, layer)
        else:
            data = _export(size, layer)
            diff = max_difference(data, size, layer)
            if not diff <= MAX_DIFF:
                raise RuntimeError(f"the ONNX export of EfficientNet-Lite0 ({size} px, {layer}) differs from PyTorch by "
                                   f"{diff:.2e} > {MAX_DIFF:.0e}")
        _write_atomic(path, data)
    return data


def _quantized(size: int, layer: str) -> bytes:
    """The checked fp32 graph quantised to int8 and checked against it on the check crops and
    `cnn_int8.check_images`."""
    fp32 = build(size, layer, "fp32")
    data = cnn_int8.quantize(fp32)
    images = np.concatenate([check_crops(), cnn_int8.check_images()])
    cnn_int8.check(_fp32_reference(fp32, images), OrtTrunk(data, threads=1, device="cpu")(images))
    return data


def _fp32_reference(fp32_graph: bytes, images: np.ndarray) -> np.ndarray:
    """The fp32 graph's embeddings, what the int8 graph is checked against (itself checked against PyTorch)."""
    return OrtTrunk(fp32_graph, threads=1, device="cpu")(images)


class OrtTrunk:
    """An ONNX Runtime session of the trunk: uint8 (N, 32, 32, 3) -> float32 (N, dim) embeddings."""

    def __init__(self, graph: bytes, threads: int, device: str = "cpu") -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads spin-wait by default; on 2 shared cores that took the time the work
        # needed (10 patches at 64 px, 2 threads: 25 ms p50 spinning, 16 ms not; 1 thread: no pool).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3  # errors only: the node's log is for the node
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(graph, sess_options=opts, providers=providers)
        self.threads = opts.intra_op_num_threads

    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = [self.session.run(None, {"patches": np.ascontiguousarray(images[i:i + BATCH])})[0]
               for i in range(0, len(images), BATCH)]
        return out[0] if len(out) == 1 else np.concatenate(out)


def trunk(size: int, layer: str, device: str = "cpu", threads: int | None = None,
          precision: str = "fp32") -> Callable[[np.ndarray], np.ndarray] | None:
    """The ONNX Runtime trunk, built once per process per (cache file, device, threads);
    an int8 graph that was refused or cannot run gives the fp32 one, an fp32 one that was refused
    or cannot run gives None (each warned once; None: use PyTorch)."""
    _check_precision(precision)
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    # Every frame comes here: the key holds what the file's cache key depends on and can change
    # in a process (package versions cannot), without hashing it each time.
    key = (str(cache_dir()), cnn_trunk.PTH_SHA256, EXPORT_VERSION, size, layer, str(device), int(threads), precision,
           cnn_int8.CALIBRATION_VERSION if precision == "int8" else 0)
    if key not in _trunks:
        with _lock:
            if key not in _trunks:
                try:
                    _trunks[key] = OrtTrunk(build(size, layer, precision), threads, device)
                except Exception as e:  # noqa: BLE001 -- any failure here must leave the features working
                    _trunks[key] = None
                    instead = "fp32 ONNX Runtime instead of INT8" if precision == "int8" else \
                        "PyTorch instead of ONNX Runtime"
                    _warn_once(str(onnx_path(size, layer, precision)),
                               f"cnn features run on {instead}: {type(e).__name__}: {e}")
    run = _trunks[key]
    if run is None and precision == "int8":
        return trunk(size, layer, device, threads, "fp32")
    return run


def _warn_once(what: str, message: str) -> None:
    if what not in _warned:
        _warned.add(what)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
