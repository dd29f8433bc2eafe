"""Outlier exposure: training labels `unknown` / `distractor` are learned like a class but mean
"none of the classes": a query they win is `unknown`, and their name is never a label, a top-k
entry or a counted class."""
import json

import numpy as np
import pytest

from robot_classify.data.datasets import PatchSet
from robot_classify.learn.model import NEGATIVE_LABELS, is_negative
from robot_classify.learn.model_io import ModelFormatError, load_model, metadata_sha256, save_model
from robot_classify.learn.training import TrainOptions, train_model
from robot_classify.runtime.frame_processor import FrameProcessor
from robot_classify.runtime.patches import SegmentationParams

from conftest import make_patches


def _boards(n: int, seed: int) -> np.ndarray:
    """Coloured checkerboards: the 'objects of no class' of these tests."""
    rng = np.random.default_rng(seed)
    board = (np.indices((32, 32)).sum(0) // 4 % 2).astype(np.uint8)[..., None]
    return np.stack([board * rng.integers(60, 256, 3, dtype=np.uint8) for _ in range(n)]).astype(np.uint8)


def _with_negatives(name: str, n: int = 40) -> PatchSet:
    known = make_patches(40, 3, seed=3, groups=8)
    neg = _boards(n, seed=1)
    return PatchSet(np.concatenate([known.images, neg]),
                    np.concatenate([known.labels, np.full(n, 3)]),
                    [*known.class_names, name], np.concatenate([known.groups, np.arange(n) % 8]))


@pytest.fixture(scope="module", params=["knn", "linear"])
def trained(request):
    data = _with_negatives("unknown")
    opts = TrainOptions(classifier=request.param, k="3" if request.param == "knn" else "auto",
                        features=["hog_color"], device="cpu", quiet=True,
                        regs=[1e-4] if request.param == "linear" else None)
    return train_model(data, opts)


def test_negative_labels_are_the_documented_names():
    assert NEGATIVE_LABELS == {"unknown", "distractor"}
    assert is_negative("distractor") and not is_negative("mug") and not is_negative("_unlabelled")


def test_a_query_won_by_the_negative_class_is_unknown_and_never_named(trained):
    boards = _boards(30, seed=2)  # new checkerboards: the negatives' kind, never seen
    pred = trained.classify(boards)
    assert (~pred.known).mean() >= 0.9
    assert not np.isin(pred.labels, trained.negative_classes).any()  # the label beside it is a real class
    assert (pred.proba[:, 3] == 0).all()  # a negative class scores 0: it is never a hypothesis
    test = make_patches(10, 3, seed=3)  # known objects keep their labels
    known = trained.classify(test.images)
    assert (known.labels == test.labels).all() and known.known.all()
    assert trained.known_class_names == ["class_0", "class_1", "class_2"]


def test_node_output_never_names_a_negative_class(trained):
    proc = FrameProcessor(trained, SegmentationParams(mode="full", padding=0.0), min_score=0.0, top_k=4)
    obj = proc.process(np.ascontiguousarray(_boards(1, seed=5)[0]), None, None, (0, 0), "cam").labels.objects[0]
    assert obj.label == "unknown"
    assert not any(is_negative(n) for n, _ in obj.top_k)
    # alternatives are classes with some evidence: none at 0 (a kNN whose k neighbours are all
    # negatives lists none, not the first classes in the model's order at 0)
    assert all(s > 0 for _, s in obj.top_k)
    if trained.kind == "knn":
        assert obj.top_k == ()
    obj = proc.process(np.ascontiguousarray(make_patches(1, 3, seed=3).images[0]), None, None, (0, 0),
                       "cam").labels.objects[0]
    assert obj.label == "class_0" and not any(is_negative(n) for n, _ in obj.top_k)


def test_negatives_replace_the_distance_threshold(trained):
    # With trained negatives the model says `unknown` through them; the distance threshold,
    # which cost known objects accuracy without rejecting more distractors, is off.
    cal = trained.calibration
    assert cal is not None and cal.n_validation == 160 and cal.novelty_threshold is None
    assert 0.0 <= cal.ece <= 0.2


def test_the_model_file_keeps_the_negative_class(tmp_path, trained):
    again = load_model(save_model(trained, tmp_path / "m.safetensors"), device="cpu")
    assert again.class_names == trained.class_names and list(again.negative_classes) == [3]
    boards = _boards(10, seed=4)
    a, b = trained.classify(boards), again.classify(boards)
    np.testing.assert_array_equal(a.known, b.known)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_distractor_is_a_negative_label_too():
    model = train_model(_with_negatives("distractor"), TrainOptions(classifier="knn", k="3", features=["hog_color"],
                                                                    device="cpu", quiet=True, calibrate=False))
    assert list(model.negative_classes) == [3]
    assert not model.classify(_boards(10, seed=6)).known.any()


def test_training_on_negatives_alone_is_refused():
    data = PatchSet(_boards(20, seed=1), np.zeros(20, np.int64), ["unknown"])
    with pytest.raises(ValueError, match="all negative"):
        train_model(data, TrainOptions(classifier="knn", k="1", features=["hog_color"], device="cpu", quiet=True,
                                       calibrate=False))


def test_a_file_whose_classes_are_all_negative_is_refused(tmp_path):
    data = make_patches(10, 2, seed=1)
    model = train_model(data, TrainOptions(classifier="knn", k="1", features=["hog_color"], device="cpu",
                                           quiet=True, calibrate=False))
    path = save_model(model, tmp_path / "m.safetensors")
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(path), "np") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    body = json.loads(meta["robot_classify"])
    body["class_names"] = ["unknown", "distractor"]
    body["metadata_sha256"] = metadata_sha256(body)  # a consistent file: only the names are hostile
    meta["robot_classify"] = json.dumps(body)
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ModelFormatError, match="negative labels"):
        load_model(tmp_path / "bad.safetensors", device="cpu")


def test_models_without_negatives_behave_as_before(tmp_path):
    data = make_patches(10, 2, seed=1)
    model = train_model(data, TrainOptions(classifier="knn", k="1", features=["hog_color"], device="cpu",
                                           quiet=True, calibrate=False))
    again = load_model(save_model(model, tmp_path / "m.safetensors"), device="cpu")
    assert len(again.negative_classes) == 0 and again.known_class_names == again.class_names
    pred = again.classify(data.images)
    assert pred.known.all() and (pred.labels == data.labels).all()
