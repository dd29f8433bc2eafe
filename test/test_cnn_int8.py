"""The INT8 ConvNet trunk's plumbing, on tiny graphs made here (no export, no quantisation run):
the cache keeps int8 apart from fp32, a quantised graph that drifts from fp32 is refused and the
fp32 graph runs instead, and the precision is chosen per device with one-line errors."""
import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from robot_classify.learn import cnn_int8, cnn_onnx  # noqa: E402


def mean_colour_graph(offset: float = 0.0) -> bytes:
    """A stand-in trunk with the real one's contract: uint8 (N, 32, 32, 3) -> unit (N, 3) embeddings,
    each patch's mean colour plus 1 (never zero), plus `offset` on the first channel (a graph that drifts)."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", ["patches"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0),
             helper.make_node("Add", ["m", "offset"], ["shifted"]),
             helper.make_node("LpNormalization", ["shifted"], ["embedding"], axis=1, p=2)]
    graph = helper.make_graph(
        nodes, "mean_colour",
        [helper.make_tensor_value_info("patches", TensorProto.UINT8, ["n", 32, 32, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor("offset", TensorProto.FLOAT, [3], [1.0 + offset, 1.0, 1.0])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def mean_colour(images: np.ndarray) -> np.ndarray:
    m = images.astype(np.float64).mean((1, 2)) + 1.0
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def tiny_trunk(tmp_path, monkeypatch):
    """cnn_onnx with the stand-in as its export and PyTorch reference, in an empty cache; returns the
    calls made to `cnn_int8.quantize`, whose result each test sets with `quantized`."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(cnn_onnx, "_export", lambda size, layer: mean_colour_graph())
    monkeypatch.setattr(cnn_onnx, "_torch_reference", lambda images, size, layer: mean_colour(images))
    monkeypatch.setattr(cnn_onnx, "_trunks", {})
    monkeypatch.setattr(cnn_onnx, "_warned", set())
    monkeypatch.setattr(cnn_int8, "check_images", lambda: cnn_int8.calibration_crops(4, seed=1))
    calls = []

    def quantized(graph: bytes) -> None:
        monkeypatch.setattr(cnn_int8, "quantize", lambda fp32: calls.append(fp32) or graph)

    return calls, quantized


def test_the_cache_key_and_file_name_include_the_precision_and_the_calibration(monkeypatch):
    fp32, int8 = cnn_onnx.cache_key(64, "blocks", "fp32"), cnn_onnx.cache_key(64, "blocks", "int8")
    assert fp32 != int8 and fp32 == cnn_onnx.cache_key(64, "blocks")
    assert "-int8-" in cnn_onnx.onnx_path(64, "blocks", "int8").name
    assert "-fp32-" in cnn_onnx.onnx_path(64, "blocks", "fp32").name
    monkeypatch.setattr(cnn_int8, "CALIBRATION_VERSION", cnn_int8.CALIBRATION_VERSION + 1)
    assert cnn_onnx.cache_key(64, "blocks", "int8") != int8  # new crops or settings: a new int8 file
    assert cnn_onnx.cache_key(64, "blocks", "fp32") == fp32  # the fp32 graph does not depend on them
    with pytest.raises(ValueError, match="precision must be 'fp32' or 'int8', got 'fp16'"):
        cnn_onnx.cache_key(64, "blocks", "fp16")


def test_an_int8_graph_close_to_fp32_is_built_from_the_checked_fp32_one_and_cached(tiny_trunk):
    calls, quantized = tiny_trunk
    quantized(mean_colour_graph(offset=0.5))  # cosine ~1 to fp32: kept
    data = cnn_onnx.build(64, "blocks", "int8")
    assert data == mean_colour_graph(offset=0.5) and calls == [mean_colour_graph()]
    assert cnn_onnx.onnx_path(64, "blocks", "int8").read_bytes() == data
    assert cnn_onnx.onnx_path(64, "blocks", "fp32").read_bytes() == mean_colour_graph()
    assert cnn_onnx.build(64, "blocks", "int8") == data and len(calls) == 1  # from the cache


def test_an_int8_graph_that_drifts_is_refused_and_fp32_runs_with_one_warning(tiny_trunk):
    import warnings

    calls, quantized = tiny_trunk
    quantized(mean_colour_graph(offset=300.0))  # the first channel dominates: cosines ~0.6-0.9
    with pytest.raises(RuntimeError, match=r"INT8 graph drifts from fp32: mean cosine 0\.\d+ \(needs >= 0\.97\)"):
        cnn_onnx.build(64, "blocks", "int8")
    assert not cnn_onnx.onnx_path(64, "blocks", "int8").exists()  # nothing refused is cached
    images = cnn_int8.calibration_crops(5, seed=3)
    with pytest.warns(RuntimeWarning, match="run on fp32 ONNX Runtime instead of INT8: RuntimeError: the INT8 graph"):
        run = cnn_onnx.trunk(64, "blocks", "cpu", threads=1, precision="int8")
    np.testing.assert_allclose(run(images), mean_colour(images), atol=1e-6)  # the fp32 graph
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process
        assert cnn_onnx.trunk(64, "blocks", "cpu", threads=1, precision="int8") is run


@pytest.mark.parametrize("offset, passes", [(0.0, True), (300.0, False)])
def test_the_drift_check_measures_cosines_to_fp32(offset, passes):
    images = cnn_int8.calibration_crops(6, seed=2)
    reference = mean_colour(images)
    got = cnn_onnx.OrtTrunk(mean_colour_graph(offset), threads=1)(images)
    mean, lowest, diff = cnn_int8.drift(reference, got)
    assert lowest <= mean <= 1.0 + 1e-6 and diff == pytest.approx(np.abs(reference - got).max())
    if passes:
        assert mean == pytest.approx(1.0, abs=1e-6)
        cnn_int8.check(reference, got)
    else:
        with pytest.raises(RuntimeError) as e:
            cnn_int8.check(reference, got)
        assert "\n" not in str(e.value) and f"largest difference {diff:.3f}" in str(e.value)


def test_the_precision_is_chosen_per_device_and_errors_are_one_line(monkeypatch):
    monkeypatch.delenv(cnn_onnx.ENGINE_ENV, raising=False)
    monkeypatch.delenv(cnn_onnx.PRECISION_ENV, raising=False)
    assert cnn_onnx.precision("cpu") == "int8"  # the default on ONNX Runtime
    assert cnn_onnx.precision("cuda") == "fp32"  # PyTorch there
    monkeypatch.setenv(cnn_onnx.PRECISION_ENV, "FP32")
    assert cnn_onnx.precision("cpu") == "fp32"
    monkeypatch.setenv(cnn_onnx.PRECISION_ENV, "int4")
    with pytest.raises(ValueError) as e:
        cnn_onnx.precision("cpu")
    assert str(e.value) == "ROBOT_CLASSIFY_CNN_PRECISION='int4': must be one of ('auto', 'int8', 'fp32')"
    monkeypatch.setenv(cnn_onnx.PRECISION_ENV, "int8")
    monkeypatch.setenv(cnn_onnx.ENGINE_ENV, "torch")
    with pytest.raises(ValueError) as e:
        cnn_onnx.precision("cpu")
    assert "\n" not in str(e.value) and str(e.value).startswith(
        "ROBOT_CLASSIFY_CNN_PRECISION=int8 needs the onnxruntime engine; the cnn features run on torch here")
    monkeypatch.setenv(cnn_onnx.PRECISION_ENV, "auto")
    assert cnn_onnx.precision("cpu") == "fp32"  # PyTorch runs fp32


def test_calibration_crops_are_deterministic_object_crops():
    a, b = cnn_int8.calibration_crops(6), cnn_int8.calibration_crops(6)
    assert a.shape == (6, 32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, cnn_int8.calibration_crops(6, seed=1))
    corners = a[:, [0, 0, -1, -1], [0, -1, 0, -1]].astype(int)  # mostly the grey background
    assert np.median(np.abs(corners - corners.mean(-1, keepdims=True))) < 8
    assert a.reshape(6, -1, 3).std(1).max() > 20  # an object on it
