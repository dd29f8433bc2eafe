import os
import pickle

import cv2
import numpy as np
import pytest

from robot_classify.data.datasets import PROPS_CLASSES, detect_format, load_dataset
from robot_classify.data.safe_pickle import UnsafePickleError, safe_load, safe_loads


def write_folder(root, sizes=((40, 60), (32, 32))):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, name in enumerate(["mug", "cracker_box"]):
            d = root / split / name
            d.mkdir(parents=True)
            for i, (h, w) in enumerate(sizes):
                img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                cv2.imwrite(str(d / f"{i}.png"), img)
            cv2.imwrite(str(d / "grey.jpg"), rng.integers(0, 256, (20, 20), dtype=np.uint8))
    (root / "train" / "mug" / "broken.png").write_bytes(b"not a png")
    return root


def test_folder_any_size_and_grey_become_32x32_rgb(tmp_path):
    splits = load_dataset(write_folder(tmp_path))
    assert detect_format(tmp_path) == "folder"
    assert splits["train"].images.shape == (6, 32, 32, 3)  # the broken file is skipped with a warning
    assert splits["train"].class_names == ["cracker_box", "mug"]


def test_a_class_folder_named_as_replay_eval_rows_is_refused(tmp_path):
    (tmp_path / "train" / "background").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "train" / "background" / "x.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="class 'background' is a word replay-eval and class maps keep"):
        load_dataset(tmp_path)


def test_folder_resize_uses_inter_area(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    (tmp_path / "test" / "a").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "test" / "a" / "x.png"), img)
    got = load_dataset(tmp_path)["test"].images[0]
    expect = cv2.resize(img[:, :, ::-1], (32, 32), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(got, expect)


def test_npz_round_trip(tmp_path):
    X = np.random.default_rng(2).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", X=X, y=np.array([0, 1, 0, 1, 1]), class_names=np.array(["a", "b"]))
    s = load_dataset(tmp_path / "d.npz")["all"]
    np.testing.assert_array_equal(s.images, X)
    assert s.class_names == ["a", "b"]


def test_npz_with_object_arrays_refused(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.array([object()], dtype=object), y=np.zeros(1), class_names=np.array(["a"]))
    with pytest.raises(ValueError, match="pickled objects"):
        load_dataset(tmp_path / "d.npz")


def write_props(root, n=4):
    root = root / "Progress-Objects-Sample"
    root.mkdir()
    rng = np.random.default_rng(3)
    with open(root / "meta.pkl", "wb") as f:
        pickle.dump({"test_split": ["mug_1", "cracker_box_1"]}, f)
    for cls in ("mug", "cracker_box"):
        for inst in (0, 1):
            with open(root / f"{cls}_{inst}.pkl", "wb") as f:
                pickle.dump({"data": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
                             "labels": [PROPS_CLASSES.index(cls)] * n}, f)
    return root.parent


def test_props_split_by_instance(tmp_path):
    splits = load_dataset(write_props(tmp_path))
    assert detect_format(tmp_path) == "props"
    assert len(splits["train"]) == 8 and len(splits["test"]) == 8
    assert splits["train"].class_names == PROPS_CLASSES
    assert set(splits["test"].labels) == {PROPS_CLASSES.index("mug"), PROPS_CLASSES.index("cracker_box")}
    assert len(np.unique(splits["train"].groups)) == 2


def write_cifar(root):
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    rows = img.transpose(0, 3, 1, 2).reshape(3, -1)  # CIFAR stores R, G, B planes row-major
    for name in ("data_batch_1", "test_batch"):
        with open(root / name, "wb") as f:
            pickle.dump({b"data": rows, b"labels": [0, 1, 2]}, f, protocol=2)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"plane", b"car", b"bird"]}, f, protocol=2)
    return img


def test_cifar10_planes_become_hwc(tmp_path):
    img = write_cifar(tmp_path)
    splits = load_dataset(tmp_path, "cifar10")
    np.testing.assert_array_equal(splits["train"].images, img)
    assert splits["test"].class_names == ["plane", "car", "bird"]


@pytest.mark.parametrize("batch, message", [
    ({b"data": np.zeros((3, 3072), np.uint8)}, r"data_batch_1: missing keys \['labels'\]"),
    ({b"data": np.full((3, 3072), 300), b"labels": [0, 1, 2]}, "data_batch_1: pixel values must be 0-255, got 300"),
    ({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1, 7]}, r"data_batch_1: labels outside \[0, 3\)"),
    ({b"data": np.zeros((3, 3072), np.uint8), b"labels": ["a", "b", "c"]}, "data_batch_1: data and labels must be numbers"),
    # found from outside: pixels of 0..1 floats had been cut to 0 and 1 without a word
    ({b"data": np.full((3, 3072), 0.25), b"labels": [0, 1, 2]}, "data_batch_1: pixel values must be whole numbers"),
    ({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0.0, 1.5, 2.0]}, "data_batch_1: labels must be whole"),
])
def test_broken_cifar_batch_is_one_line_naming_it(tmp_path, batch, message):
    """Found from outside: these were a TypeError, an OverflowError and a message without the file."""
    write_cifar(tmp_path)
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    with pytest.raises(ValueError, match=message):
        load_dataset(tmp_path, "cifar10")


def test_cut_or_mislabelled_npz_is_one_line_naming_it(tmp_path):
    X = np.zeros((2, 32, 32, 3), np.uint8)
    np.savez(tmp_path / "d.npz", X=X, y=np.array([0, 1]), class_names=np.array(["a", "b"]))
    data = (tmp_path / "d.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.npz: not a readable .npz"):  # was zipfile.BadZipFile
        load_dataset(tmp_path / "cut.npz")
    np.savez(tmp_path / "text.npz", X=X, y=np.array(["a", "b"]), class_names=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="text.npz: X, y: labels must be numbers"):
        load_dataset(tmp_path / "text.npz")
    # found from outside: labels of 0.5 and 1.5 had been cut to 0 and 1, and channels-first images
    # were reported after a resize as (N, 32, 32, 32)
    np.savez(tmp_path / "half.npz", X=X, y=np.array([0.5, 1.5]), class_names=np.array(["a", "b"]))
    with pytest.raises(ValueError, match="half.npz: X, y: labels must be whole numbers.* 0.5"):
        load_dataset(tmp_path / "half.npz")
    np.savez(tmp_path / "chw.npz", X=X.transpose(0, 3, 1, 2).copy(), y=np.array([0, 1]), class_names=np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"chw.npz: X has shape \(2, 3, 32, 32\): channels first"):
        load_dataset(tmp_path / "chw.npz")


class Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


class EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('os').system('touch PWNED2')",))


@pytest.mark.parametrize("payload", [Evil(), EvalEvil(), {"data": Evil()}])
def test_hostile_pickle_does_not_run(tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps(payload))
    with pytest.raises(UnsafePickleError, match="refusing to load"):
        safe_load(p)
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "PWNED2").exists()


def test_pickled_bytes_inside_another_file_read_by_the_same_rules():
    """An object `.npy` (a dict of arrays, as demo data ships) holds a pickle after its header."""
    arrays = {"depth": np.ones((2, 3), np.float32), "K": np.eye(3)}
    got = safe_loads(pickle.dumps(arrays), source="demo.npy")
    assert set(got) == {"depth", "K"} and got["depth"].dtype == np.float32
    with pytest.raises(UnsafePickleError, match="demo.npy: refusing to load"):
        safe_loads(pickle.dumps({"K": Evil()}), source="demo.npy")


def test_hostile_meta_in_props_dataset_refused(tmp_path):
    root = write_props(tmp_path) / "Progress-Objects-Sample"
    (root / "meta.pkl").write_bytes(pickle.dumps({"test_split": [], "x": Evil()}))
    with pytest.raises(UnsafePickleError):
        load_dataset(tmp_path)


def test_truncated_pickle_clear_error(tmp_path):
    p = tmp_path / "cut.pkl"
    p.write_bytes(pickle.dumps({"data": np.zeros((4, 32, 32, 3), np.uint8)})[:50])
    with pytest.raises(ValueError, match="not a readable dataset pickle"):
        safe_load(p)


def test_unknown_dataset_layout(tmp_path):
    (tmp_path / "notes.txt").write_text("not a dataset")
    with pytest.raises(ValueError, match="cannot tell the dataset format"):
        load_dataset(tmp_path)


def test_empty_and_missing_dataset_folders_say_so(tmp_path):
    with pytest.raises(ValueError, match="the dataset folder is empty"):
        load_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_dataset(tmp_path / "nowhere.npz", "npz")


def test_read_image_missing_file_says_no_such_file_without_opencv_noise(tmp_path, capfd):
    from robot_classify.data.datasets import read_image

    with pytest.raises(FileNotFoundError, match="no such file"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="not a readable image"):
        read_image(tmp_path / "bad.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ValueError, match="not a readable image"):
        read_image(tmp_path / "empty.png")
    assert "WARN" not in capfd.readouterr().err


def test_a_damaged_image_file_is_one_error_and_no_opencv_warning(tmp_path, capfd):
    """Tried from outside: a truncated depth PNG in an import printed OpenCV's own
    `[ WARN ...] PNG input buffer is incomplete` line before the package's error, and then
    libpng's `libpng error: PNG input buffer is incomplete`. A truncated file is said to be one."""
    import cv2
    from robot_classify.data.datasets import read_image_unchanged

    ok, buf = cv2.imencode(".png", np.zeros((50, 50), np.uint16))
    (tmp_path / "cut.png").write_bytes(buf[:len(buf) // 2].tobytes())
    with pytest.raises(ValueError, match=r"cut.png: truncated PNG \(no IEND chunk\)"):
        read_image_unchanged(tmp_path / "cut.png")
    ok, buf = cv2.imencode(".jpg", np.full((50, 50, 3), 90, np.uint8))
    (tmp_path / "cut.jpg").write_bytes(buf[:len(buf) // 2].tobytes())
    with pytest.raises(ValueError, match=r"cut.jpg: truncated JPEG"):
        read_image_unchanged(tmp_path / "cut.jpg")
    err = capfd.readouterr().err
    assert "WARN" not in err and "libpng" not in err
