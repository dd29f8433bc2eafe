import json
import struct

import numpy as np
import pytest

from robot_classify.features import FeaturePipeline
from robot_classify.knn import KNNClassifier
from robot_classify.linear import LinearClassifier
from robot_classify.model import ClassifierModel
from robot_classify.model_io import ModelFormatError, load_model, save_model


def knn_model(patches, kind="pixels"):
    return ClassifierModel(FeaturePipeline(kind, center=False), KNNClassifier(3, "l2", device="cpu"),
                           patches.class_names).fit(patches.images, patches.labels)


@pytest.mark.parametrize("kind", ["pixels", "hog_color"])
def test_knn_round_trip_predicts_identically(tmp_path, patches, kind):
    model = knn_model(patches, kind)
    path = save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(path, device="cpu")
    a, pa = model.predict(patches.images)
    b, pb = loaded.predict(patches.images)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(pa, pb)
    assert loaded.class_names == patches.class_names and len(loaded.meta["sha256"]) == 64


def test_linear_round_trip(tmp_path, patches):
    model = ClassifierModel(FeaturePipeline("pixels", center=True, pca_dims=8),
                            LinearClassifier("svm", epochs=5, device="cpu"), patches.class_names)
    model.fit(patches.images, patches.labels)
    loaded = load_model(save_model(model, tmp_path / "lin.safetensors"), device="cpu")
    np.testing.assert_allclose(model.predict(patches.images)[1], loaded.predict(patches.images)[1], atol=1e-6)


def _rewrite_meta(path, edit):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["robot_classify"])
    edit(meta)
    header["__metadata__"]["robot_classify"] = json.dumps(meta)
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n:])


@pytest.fixture
def saved(tmp_path, patches):
    return save_model(knn_model(patches), tmp_path / "m.safetensors")


def test_truncated_file_rejected(saved):
    saved.write_bytes(saved.read_bytes()[:100])
    with pytest.raises(ModelFormatError, match="not a readable safetensors"):
        load_model(saved)


def test_garbage_file_rejected(tmp_path):
    p = tmp_path / "junk.safetensors"
    p.write_bytes(b"\xff" * 64)
    with pytest.raises(ModelFormatError):
        load_model(p)


def test_missing_file_rejected(tmp_path):
    with pytest.raises(ModelFormatError, match="no such model file"):
        load_model(tmp_path / "nope.safetensors")


def test_tampered_tensor_bytes_rejected(saved):
    raw = bytearray(saved.read_bytes())
    raw[-5] ^= 0xFF
    saved.write_bytes(bytes(raw))
    with pytest.raises(ModelFormatError, match="checksum mismatch"):
        load_model(saved)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format_version=99), "format version 99"),
    (lambda m: m.update(class_names=["a"]), "outside the class range"),
    (lambda m: m.update(class_names=["a", "a", "b"]), "unique strings"),
    (lambda m: m["classifier"].update(kind="forest"), "unknown classifier kind"),
    (lambda m: m["classifier"]["params"].update(k=10_000), "exceeds"),
    (lambda m: m["classifier"]["params"].update(metric="hamming"), "metric must be one of"),
    (lambda m: m["classifier"]["params"].update(evil="os.system"), "bad classifier parameters"),
    (lambda m: m.update(patch_size=64), "patch_size"),
])
def test_tampered_metadata_rejected_with_clear_message(saved, edit, message):
    _rewrite_meta(saved, edit)
    with pytest.raises(ModelFormatError, match=message):
        load_model(saved)


def test_non_robot_classify_safetensors_rejected(tmp_path):
    from safetensors.numpy import save_file

    p = tmp_path / "other.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(p))
    with pytest.raises(ModelFormatError, match="not a robot_classify model"):
        load_model(p)
