"""ConvNet features on ONNX Runtime: the graph is exported here from the checked weights, gives
PyTorch's embeddings (<= 1e-4 per component) and kNN labels, leaves model files as they were,
and its cache is rebuilt whenever it is stale or damaged, never crashing the features."""
import numpy as np
import pytest

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("onnxruntime")

from robot_classify.learn import cnn_onnx  # noqa: E402
from robot_classify.learn.features import FeaturePipeline  # noqa: E402

from conftest import object_crops as crops  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def onnx_cache(tmp_path_factory):
    """One cache directory for the module: each (size, layer) is exported once, as in a process."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))
        mp.delenv(cnn_onnx.ENGINE_ENV, raising=False)
        mp.setenv(cnn_onnx.PRECISION_ENV, "fp32")  # these tests hold fp32 to PyTorch; int8: test_cnn_int8.py
        yield cnn_onnx.cache_dir()


def features(engine: str, monkeypatch, images: np.ndarray, **options) -> np.ndarray:
    monkeypatch.setenv(cnn_onnx.ENGINE_ENV, engine)
    pipe = FeaturePipeline(**options)
    assert pipe.extractor.engine == engine
    return pipe.transform(images)


@pytest.mark.parametrize("size, layer", [(64, "blocks"), (64, "head"), (48, "blocks")])
def test_onnxruntime_gives_pytorchs_embeddings(monkeypatch, size, layer):
    images = np.concatenate([crops(size), cnn_onnx.check_crops()])
    ort = features("onnxruntime", monkeypatch, images, kind="cnn", size=size, layer=layer)
    run = cnn_onnx.trunk(size, layer)
    assert run is not None and cnn_onnx.onnx_path(size, layer).is_file()
    np.testing.assert_array_equal(ort, run(images))  # the features did run on ONNX Runtime
    torch_ = features("torch", monkeypatch, images, kind="cnn", size=size, layer=layer)
    assert ort.dtype == np.float32 and ort.shape == torch_.shape == (len(images), 320 if layer == "blocks" else 1280)
    assert np.abs(ort - torch_).max() <= cnn_onnx.MAX_DIFF
    np.testing.assert_allclose(np.linalg.norm(ort, axis=1), 1.0, rtol=1e-5)


def test_batches_of_any_size_agree(monkeypatch):
    images = crops(3, 9)
    X = features("onnxruntime", monkeypatch, images, kind="cnn")
    np.testing.assert_allclose(features("onnxruntime", monkeypatch, images[:1], kind="cnn"), X[:1], atol=1e-6)
    monkeypatch.setattr(cnn_onnx, "BATCH", 4)  # a training set goes in chunks
    np.testing.assert_allclose(cnn_onnx.trunk(64, "blocks")(images), X, atol=1e-6)
    assert features("onnxruntime", monkeypatch, images[:0], kind="cnn").shape == (0, 320)


def test_knn_labels_are_identical_on_both_engines(monkeypatch):
    from conftest import make_patches

    from robot_classify.learn.knn import KNNClassifier

    data = make_patches(n_per_class=16, n_classes=4, seed=5)
    train, test = np.arange(len(data.labels)) % 2 == 0, np.arange(len(data.labels)) % 2 == 1
    preds = {}
    for engine in ("torch", "onnxruntime"):
        X = features(engine, monkeypatch, data.images, kind="cnn_color")
        preds[engine] = KNNClassifier(3, "l2", device="cpu").fit(X[train], data.labels[train]).predict(X[test])
    np.testing.assert_array_equal(preds["onnxruntime"], preds["torch"])
    assert (preds["onnxruntime"] == data.labels[test]).mean() > 0.9


def test_a_model_file_made_on_pytorch_loads_and_predicts_alike_on_onnxruntime(tmp_path, monkeypatch):
    """The engine is the process's, not the file's: the features' config keeps its keys."""
    from conftest import make_patches

    from robot_classify.learn.knn import KNNClassifier
    from robot_classify.learn.model import ClassifierModel
    from robot_classify.learn.model_io import load_model, save_model

    data = make_patches(n_per_class=8, n_classes=3, seed=7)
    monkeypatch.setenv(cnn_onnx.ENGINE_ENV, "torch")
    model = ClassifierModel(FeaturePipeline(kind="cnn_color"), KNNClassifier(3, "l2", device="cpu"),
                            data.class_names).fit(data.images, data.labels)
    path = save_model(model, tmp_path / "cnn_color.safetensors")
    labels, proba = model.predict(data.images)[:2]
    monkeypatch.setenv(cnn_onnx.ENGINE_ENV, "auto")
    loaded = load_model(path, device="cpu")
    assert loaded.features.extractor.engine == "onnxruntime"
    assert loaded.features.config() == {"kind": "cnn_color", "size": 64, "layer": "blocks", "color_weight": 1.0,
                                        "pca_dims": 0}
    got = loaded.predict(data.images)
    np.testing.assert_array_equal(got[0], labels)
    np.testing.assert_allclose(got[1], proba, atol=1e-6)


def test_the_engine_is_chosen_per_device_and_by_the_environment(monkeypatch):
    monkeypatch.delenv(cnn_onnx.ENGINE_ENV, raising=False)
    assert cnn_onnx.engine("cpu") == "onnxruntime"
    assert cnn_onnx.engine("cuda") == "torch"  # PyTorch replays its captured graphs there (cnn_cuda)
    monkeypatch.setenv(cnn_onnx.ENGINE_ENV, "torch")
    assert cnn_onnx.engine("cpu") == "torch"
    monkeypatch.setenv(cnn_onnx.ENGINE_ENV, "onnxruntime")
    assert cnn_onnx.engine("cuda") == "onnxruntime"
    monkeypatch.setenv(cnn_onnx.ENGINE_ENV, "tensorrt")
    with pytest.raises(ValueError, match="ROBOT_CLASSIFY_CNN_ENGINE='tensorrt': must be one of"):
        cnn_onnx.engine("cpu")
    monkeypatch.setattr(cnn_onnx, "_ort_importable", False)  # a machine without onnxruntime
    monkeypatch.setenv(cnn_onnx.ENGINE_ENV, "auto")
    assert cnn_onnx.engine("cpu") == "torch"
    monkeypatch.setenv(cnn_onnx.ENGINE_ENV, "onnxruntime")
    with pytest.raises(ValueError, match="onnxruntime is not installed"):
        cnn_onnx.engine("cpu")


def test_features_say_what_runs_them_and_when_it_is_the_slow_engine(monkeypatch):
    """The node's ready line names the engine; a CPU without onnxruntime earns a warning (a ROS
    workspace's pip line that left it out ran at a third of the speed without a word)."""
    from robot_classify.learn.features import FeaturePipeline

    monkeypatch.delenv(cnn_onnx.ENGINE_ENV, raising=False)
    monkeypatch.delenv(cnn_onnx.PRECISION_ENV, raising=False)
    monkeypatch.setattr(cnn_onnx, "_ort_importable", True)
    cnn = FeaturePipeline("cnn_color")
    assert cnn.describe() == "cnn_color on onnxruntime int8, cpu" and cnn.slow_engine_note() is None
    assert FeaturePipeline("hog_color", pca_dims=8).describe() == "hog_color + PCA to 8"
    assert FeaturePipeline("hog_color").slow_engine_note() is None
    monkeypatch.setattr(cnn_onnx, "_ort_importable", False)
    assert cnn.describe() == "cnn_color on torch fp32, cpu"
    assert "onnxruntime does not import" in cnn.slow_engine_note()
    monkeypatch.setenv(cnn_onnx.ENGINE_ENV, "torch")  # asked for: no warning
    assert cnn.slow_engine_note() is None
    monkeypatch.delenv(cnn_onnx.ENGINE_ENV)
    assert cnn.to("cuda").slow_engine_note() is None  # PyTorch is the engine there


def test_the_cache_key_follows_weights_settings_and_versions(monkeypatch):
    from robot_classify.learn import cnn_trunk

    key = cnn_onnx.cache_key(64, "blocks")
    assert key == cnn_onnx.cache_key(64, "blocks") and key in cnn_onnx.onnx_path(64, "blocks").name
    changed = {cnn_onnx.cache_key(48, "blocks"), cnn_onnx.cache_key(64, "head")}
    monkeypatch.setattr(cnn_trunk, "PTH_SHA256", "0" * 64)
    changed.add(cnn_onnx.cache_key(64, "blocks"))
    monkeypatch.undo()
    monkeypatch.setattr(cnn_onnx, "EXPORT_VERSION", cnn_onnx.EXPORT_VERSION + 1)
    changed.add(cnn_onnx.cache_key(64, "blocks"))
    monkeypatch.undo()
    monkeypatch.setattr(cnn_onnx, "_version", lambda package: "9.9" if package == "onnxruntime" else "1.0")
    changed.add(cnn_onnx.cache_key(64, "blocks"))
    assert key not in changed and len(changed) == 5


def count_exports(monkeypatch) -> list:
    """Counts exports; each returns the checked 64 px graph made once above (tracing is timed
    and compared in the tests before; here it is how often the cache rebuilds that matters)."""
    calls = []
    graph = cnn_onnx.build(64, "blocks")

    def counted(size, layer):
        assert (size, layer) == (64, "blocks")
        calls.append((size, layer))
        return graph

    monkeypatch.setattr(cnn_onnx, "_export", counted)
    return calls


def test_a_new_key_builds_a_new_checked_file_and_keeps_the_old(monkeypatch):
    calls = count_exports(monkeypatch)
    old = cnn_onnx.onnx_path(64, "blocks")
    cnn_onnx.build(64, "blocks")
    assert calls == []  # cached: nothing exported again
    monkeypatch.setattr(cnn_onnx, "EXPORT_VERSION", 1000)
    new = cnn_onnx.onnx_path(64, "blocks")
    assert cnn_onnx.trunk(64, "blocks") is not None
    assert calls == [(64, "blocks")] and new != old and new.is_file() and old.is_file()
    assert not list(new.parent.glob("*.tmp"))


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "no sidecar"])
def test_a_damaged_cache_file_is_detected_and_rebuilt(monkeypatch, damage):
    import hashlib

    calls = count_exports(monkeypatch)
    monkeypatch.setattr(cnn_onnx, "EXPORT_VERSION", 1001)  # a file of these tests' own
    path = cnn_onnx.onnx_path(64, "blocks")
    good = cnn_onnx.build(64, "blocks")
    calls.clear()
    if damage == "flip a byte":
        data = bytearray(good)
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(good[:1000])
    else:
        path.with_name(path.name + ".sha256").unlink()
    assert cnn_onnx._read_verified(path) is None
    assert cnn_onnx.build(64, "blocks") == path.read_bytes()
    assert calls == [(64, "blocks")]
    assert path.with_name(path.name + ".sha256").read_text() == hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_export_that_differs_from_pytorch_is_refused_once_and_pytorch_runs(monkeypatch):
    calls = count_exports(monkeypatch)
    monkeypatch.setattr(cnn_onnx, "EXPORT_VERSION", 1002)
    reference = cnn_onnx._torch_reference
    monkeypatch.setattr(cnn_onnx, "_torch_reference", lambda *a: reference(*a) + 2e-4)
    images = crops(11, 4)
    with pytest.warns(RuntimeWarning, match="run on PyTorch instead of ONNX Runtime.*differs from PyTorch by 2.0"):
        got = features("onnxruntime", monkeypatch, images, kind="cnn")
    assert calls == [(64, "blocks")] and not cnn_onnx.onnx_path(64, "blocks").exists()  # nothing failed cached
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process, not once per frame
        again = features("onnxruntime", monkeypatch, images, kind="cnn")
    np.testing.assert_array_equal(got, again)
    np.testing.assert_array_equal(got, features("torch", monkeypatch, images, kind="cnn"))


def test_a_graph_onnxruntime_cannot_load_leaves_the_features_on_pytorch(monkeypatch):
    """A file that passes its checksum yet does not load (written by hand, say) must not crash."""
    import hashlib

    monkeypatch.setattr(cnn_onnx, "EXPORT_VERSION", 1003)
    path = cnn_onnx.onnx_path(64, "blocks")
    path.write_bytes(b"not a graph")
    path.with_name(path.name + ".sha256").write_text(hashlib.sha256(b"not a graph").hexdigest())
    with pytest.warns(RuntimeWarning, match="run on PyTorch instead"):
        X = features("onnxruntime", monkeypatch, crops(12, 3), kind="cnn")
    np.testing.assert_array_equal(X, features("torch", monkeypatch, crops(12, 3), kind="cnn"))


@pytest.mark.slow
def test_the_int8_graph_stays_close_to_fp32_and_fp32_models_predict_alike_on_it(monkeypatch):
    """The real quantisation (~10 s): the default precision on CPU, cached beside fp32, its
    embeddings within the check's cosines of fp32's, and a kNN fitted on fp32 embeddings gives
    the same labels on it."""
    from conftest import make_patches

    from robot_classify.learn import cnn_int8
    from robot_classify.learn.knn import KNNClassifier

    images = np.concatenate([crops(21, 30), cnn_int8.calibration_crops(30, seed=5)])
    fp32 = features("onnxruntime", monkeypatch, images, kind="cnn")
    monkeypatch.setenv(cnn_onnx.PRECISION_ENV, "auto")
    pipe = FeaturePipeline(kind="cnn")
    assert pipe.extractor.precision == "int8"
    int8 = pipe.transform(images)
    assert cnn_onnx.onnx_path(64, "blocks", "int8").is_file()
    np.testing.assert_array_equal(int8, cnn_onnx.trunk(64, "blocks", precision="int8")(images))  # int8 ran
    mean, lowest, diff = cnn_int8.drift(fp32, int8)
    assert mean >= 0.99 and lowest >= 0.95 and 1e-4 < diff < 0.1, (mean, lowest, diff)

    data = make_patches(n_per_class=16, n_classes=4, seed=5)
    train, test = np.arange(len(data.labels)) % 2 == 0, np.arange(len(data.labels)) % 2 == 1
    monkeypatch.setenv(cnn_onnx.PRECISION_ENV, "fp32")
    knn = KNNClassifier(3, "l2", device="cpu").fit(pipe.transform(data.images[train]), data.labels[train])
    expected = knn.predict(pipe.transform(data.images[test]))
    monkeypatch.setenv(cnn_onnx.PRECISION_ENV, "int8")
    np.testing.assert_array_equal(knn.predict(pipe.transform(data.images[test])), expected)
