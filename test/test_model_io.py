import hashlib
import json
import struct

import numpy as np
import pytest

from robot_classify.learn.features import FeaturePipeline
from robot_classify.learn.knn import KNNClassifier
from robot_classify.learn.linear import LinearClassifier
from robot_classify.learn.model import ClassifierModel
from robot_classify.learn.model_io import ModelFormatError, load_model, save_model


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
                            LinearClassifier("svm", max_steps=50, device="cpu"), patches.class_names)
    model.fit(patches.images, patches.labels)
    loaded = load_model(save_model(model, tmp_path / "lin.safetensors"), device="cpu")
    np.testing.assert_allclose(model.predict(patches.images)[1], loaded.predict(patches.images)[1], atol=1e-6)


def _sign(meta):
    """The format's metadata checksum, computed here independently of model_io."""
    body = {k: v for k, v in meta.items() if k != "metadata_sha256"}
    meta["metadata_sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
                                             ).hexdigest()


def _read_meta(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(json.loads(raw[8:8 + n])["__metadata__"]["robot_classify"])


def _rewrite_meta(path, edit, resign=True):
    """Edit the metadata in place; `resign` updates its checksum so the field checks are what is tested."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["robot_classify"])
    edit(meta)
    if resign and meta.get("format_version") in (2, 3, 4):
        _sign(meta)
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


def test_a_torch_checkpoint_or_a_pickle_is_named_as_such_and_never_unpickled(tmp_path, monkeypatch):
    import pickle
    import zipfile

    monkeypatch.chdir(tmp_path)
    with zipfile.ZipFile(tmp_path / "m.pt", "w") as z:  # torch.save's layout: a zip holding data.pkl
        z.writestr("archive/data.pkl", pickle.dumps({"w": [1.0]}))
    with pytest.raises(ModelFormatError, match="zip archive \\(a torch.save checkpoint"):
        load_model(tmp_path / "m.pt")
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(__import__("os").system, protocol=4))
    with pytest.raises(ModelFormatError, match="it is a pickle, which robot_classify never loads"):
        load_model(tmp_path / "m.pkl")


def test_garbage_file_rejected(tmp_path):
    p = tmp_path / "junk.safetensors"
    p.write_bytes(b"\xff" * 64)
    with pytest.raises(ModelFormatError):
        load_model(p)


def test_missing_file_rejected(tmp_path):
    with pytest.raises(ModelFormatError, match="no such model file"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(ModelFormatError, match="a folder, not a model file"):
        load_model(tmp_path)


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


def test_metadata_is_covered_by_the_checksum(saved):
    """A valid-looking edit (one letter of a class name, k) is damage, not a different model."""
    _rewrite_meta(saved, lambda m: m["class_names"].__setitem__(0, "class_O"), resign=False)
    with pytest.raises(ModelFormatError, match="metadata checksum mismatch"):
        load_model(saved)
    _rewrite_meta(saved, lambda m: (m["class_names"].__setitem__(0, "class_0"),
                                    m["classifier"]["params"].update(k=1)), resign=False)
    with pytest.raises(ModelFormatError, match="metadata checksum mismatch"):
        load_model(saved)


def test_file_records_format_version_4_and_its_metadata_checksum(saved):
    meta = _read_meta(saved)
    assert meta["format_version"] == 4 and meta["resting"] is None
    stored = meta["metadata_sha256"]
    _sign(meta)
    assert meta["metadata_sha256"] == stored


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["classifier"]["params"].pop("k"), "missing 'k'"),
    (lambda m: m["classifier"]["params"].update(k=True), "k must be a positive integer, got True"),
    (lambda m: m["classifier"]["params"].update(k=2.0), "k must be a positive integer"),
    (lambda m: m.update(format_version=True), "format version True"),
    (lambda m: m.update(patch_size=32.0), "patch_size 32.0"),
    (lambda m: m["features"].update(center=1), "center must be true or false"),
    (lambda m: m["features"].update(hue_bins=4), "unknown field"),
    (lambda m: m.update(extra=1), "unknown field"),
    (lambda m: m.pop("tuning"), "missing 'tuning'"),
    (lambda m: m.update(class_names=["class_0", "class\n1", "class_2"]), r"class_names\[1\]"),
    (lambda m: m.update(tensors_sha256=None), "tensors_sha256 must be 64"),
])
def test_every_field_is_checked_strictly(saved, edit, message):
    _rewrite_meta(saved, edit)
    with pytest.raises(ModelFormatError, match=message):
        load_model(saved)


def _make_v1(path):
    _rewrite_meta(path, lambda m: (m.update(format_version=1), m.pop("metadata_sha256"), m.pop("calibration"),
                                   m.pop("resting")))


def test_version_1_file_loads_and_resaves_as_version_4_identically(tmp_path, patches):
    """How a v1 file (the shipped default model too) is upgraded: load, save, nothing retrained."""
    model = knn_model(patches, "hog_color")
    v1 = save_model(model, tmp_path / "v1.safetensors")
    _make_v1(v1)
    old = load_model(v1, device="cpu")
    v2 = save_model(old, tmp_path / "v2.safetensors")
    assert _read_meta(v2)["format_version"] == 4
    new = load_model(v2, device="cpu")
    assert new.class_names == old.class_names and new.meta["name"] == "v1"
    a, pa = model.predict(patches.images)
    b, pb = new.predict(patches.images)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pa, pb)


def test_version_1_fields_are_checked_as_strictly(saved):
    _make_v1(saved)
    _rewrite_meta(saved, lambda m: m["classifier"]["params"].pop("k"))
    with pytest.raises(ModelFormatError, match="missing 'k'"):
        load_model(saved)


def test_version_2_checksum_field_cannot_ride_on_a_version_1_file(saved):
    _rewrite_meta(saved, lambda m: (m.update(format_version=1), m.pop("calibration"), m.pop("resting")))
    with pytest.raises(ModelFormatError, match="unknown field.*metadata_sha256"):
        load_model(saved)


def test_resting_heights_round_trip_and_version_3_files_have_none(tmp_path, patches):
    model = knn_model(patches)
    model.resting = {"class_0": (0.14,), "class_2": (0.21, 0.06)}
    path = save_model(model, tmp_path / "r.safetensors")
    assert _read_meta(path)["resting"] == {"class_0": [0.14], "class_2": [0.21, 0.06]}
    assert load_model(path).resting == {"class_0": (0.14,), "class_2": (0.21, 0.06)}
    _rewrite_meta(path, lambda m: (m.update(format_version=3), m.pop("resting")))
    assert load_model(path).resting is None  # written before 0.9.0: any pose
    _rewrite_meta(path, lambda m: m.update(resting={"class_0": [0.14]}))
    with pytest.raises(ModelFormatError, match="unknown field.*resting"):  # no v4 field on a v3 file
        load_model(path)


@pytest.mark.parametrize("resting, message", [
    ([0.1], "null or a JSON object, got an array"),
    ({"mug": [0.1]}, "'mug', which is not a class of the model"),
    ({"class_0": []}, r"resting\['class_0'\] must be a list of 1-3 heights"),
    ({"class_0": [0.1, 0.2, 0.3, 0.4]}, "1-3 heights"),
    ({"class_0": [-0.1]}, r"in \(0, 10\] metres"),
    ({"class_0": [True]}, "heights"),
    ({"class_0": ["0.1"]}, "heights"),
    ({"class_0": 0.1}, "heights"),
])
def test_resting_heights_are_checked(saved, resting, message):
    _rewrite_meta(saved, lambda m: m.update(resting=resting))
    with pytest.raises(ModelFormatError, match=message):
        load_model(saved)


def test_taught_views_add_their_poses_and_unmeasured_ones_lift_the_restriction(patches):
    """A model keeping to its training poses learns the poses of taught views (their height above
    the support); a view of unknown pose (no support, or crops from a folder) may show any."""
    model = knn_model(patches)
    model.resting = {"class_0": (0.14,), "class_1": (0.1,), "class_2": (0.2,)}
    X = model.features.transform(patches.images[:2])
    model.add_features(X, "class_0", heights=[0.135, 0.104])  # standing again (within 10%), and on its side
    assert model.resting["class_0"] == (0.14, 0.104)
    model.add_features(X, "class_0", heights=[0.05, 0.03])  # more poses than a product has: any
    model.add_examples(patches.images[:2], "class_1")  # no heights
    assert set(model.resting) == {"class_2"}
    model.add_features(X, "class_1", heights=[0.1])  # named in any pose already: stays so
    model.forget("class_2")
    assert model.resting == {}
    model.add_features(X, "class_2", heights=[0.21, 0.2])  # re-taught: it starts from its new views' poses
    assert model.resting == {"class_2": (0.21,)}
    model.forget("class_2")
    model.add_features(X, "class_2", heights=[0.2, None])  # one view unmeasured: any pose
    assert model.resting == {}
    model.add_features(X, "new_thing", heights=[0.07, 0.071])  # a new class starts from its views' poses
    assert model.resting == {"new_thing": (0.07,)}
    model.resting = None  # a model that never kept to poses does not start
    model.add_features(X, "other", heights=[0.07])
    assert model.resting is None


@pytest.mark.parametrize("make", ["knn", "linear"])
def test_load_save_round_trip_is_identical(tmp_path, patches, make):
    if make == "knn":
        model = knn_model(patches, "hog_color")
    else:
        model = ClassifierModel(FeaturePipeline("pixels", center=True, pca_dims=8),
                                LinearClassifier("svm", max_steps=50, device="cpu"), patches.class_names)
        model.fit(patches.images, patches.labels)
    first = save_model(model, tmp_path / "a.safetensors")
    second = save_model(load_model(first, device="cpu"), tmp_path / "b.safetensors")
    meta_a, meta_b = _read_meta(first), _read_meta(second)
    assert meta_a == meta_b
    from safetensors.numpy import load_file

    ta, tb = load_file(str(first)), load_file(str(second))
    assert ta.keys() == tb.keys()
    for name in ta:
        np.testing.assert_array_equal(ta[name], tb[name])
    a, pa = load_model(first, device="cpu").predict(patches.images)
    b, pb = load_model(second, device="cpu").predict(patches.images)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pa, pb)


def test_save_refuses_what_load_would_refuse(tmp_path, patches):
    model = knn_model(patches)
    model.class_names = ["class_0", "class\n1", "class_2"]
    with pytest.raises(ModelFormatError, match=r"class_names\[1\]"):
        save_model(model, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_file_with_more_tensors_than_a_model_has_rejected_before_reading_them(tmp_path):
    from safetensors.numpy import save_file

    p = tmp_path / "many.safetensors"
    save_file({f"t{i}": np.zeros(1, np.uint8) for i in range(20)}, str(p), metadata={"robot_classify": "{}"})
    with pytest.raises(ModelFormatError, match="20 tensors, more than the 10"):
        load_model(p)


def test_unusable_device_is_named_as_the_problem(saved):
    with pytest.raises(ModelFormatError, match="cannot load a model on device 'tpu'"):
        load_model(saved, device="tpu")


def test_version_2_linear_file_written_by_the_old_code_still_loads(tmp_path, patches):
    """A format-2 linear file (epochs in its params, three linear tensors, no calibration) loads:
    same scores as before, no open set, min_score 0.5; re-saved it becomes format 3."""
    from safetensors.numpy import save_file

    from robot_classify.learn.model_io import _canonical_json, _tensors_sha256, metadata_sha256

    model = ClassifierModel(FeaturePipeline("pixels", center=True), LinearClassifier(device="cpu"),
                            patches.class_names).fit(patches.images, patches.labels)
    clf = model.classifier
    tensors = {**model.features.state(), "linear.W": clf.coef_, "linear.b": clf.intercept_,
               "linear.classes": clf.classes_.astype(np.int64)}
    meta = {"format": "robot_classify.model", "format_version": 2, "name": "old", "class_names": patches.class_names,
            "patch_size": 32, "features": model.features.config(),
            "classifier": {"kind": "linear", "params": {"loss": "softmax", "reg": 1e-4, "lr": 0.01, "epochs": 20,
                                                        "batch_size": 256, "momentum": 0.9, "seed": 0}},
            "training": {}, "tuning": {}, "tensors_sha256": _tensors_sha256(tensors)}
    meta["metadata_sha256"] = metadata_sha256(meta)
    path = tmp_path / "v2.safetensors"
    save_file(tensors, str(path), metadata={"robot_classify": _canonical_json(meta)})
    old = load_model(path, device="cpu")
    assert old.calibration is None and old.default_min_score == 0.5 and old.classifier.means_ is None
    pred = old.classify(patches.images)
    assert pred.known.all()
    np.testing.assert_allclose(pred.proba, clf.predict_proba(model.features.transform(patches.images)), rtol=1e-5)
    again = load_model(save_model(old, tmp_path / "v3.safetensors"), device="cpu")
    np.testing.assert_allclose(again.predict(patches.images)[1], pred.proba, rtol=1e-6)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_saved_model_has_the_mode_any_new_file_gets(tmp_path, patches, umask, mode):
    """0.6.1 wrote models 0600 (its temporary file's mode, kept by the rename): a node running as
    a service user could not read a model a developer trained. Now the umask decides, as for
    every other file the package writes; nothing is left beside it."""
    import os
    import stat

    old = os.umask(umask)
    try:
        path = save_model(knn_model(patches), tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
