"""Fuzzing load_model: a damaged model file is a ModelFormatError, never a different model.

Two small models (kNN on HOG + colour with k=1 and non-default colour settings, softmax on
centred pixels + PCA) are saved, then mutated: (a) every metadata field deleted, nulled, given
the wrong type, NaN/Infinity/1e400, huge ints, 1,000-deep nesting, bit-flipped strings and
shifted numbers, re-written into a valid safetensors file; (b) seeded random bit flips and
truncations of the whole file. A mutant must raise ModelFormatError or load a model that
names the same classes and predicts exactly as the original on a fixed probe set.

(a) also runs "re-signed": the metadata checksum is recomputed after the edit, as a careless
tool (or a v1 file, which has none) would. Then a valid edit may legitimately load as a
different model, so the assertion is only: ModelFormatError, or a model that works.
"""
from __future__ import annotations

import copy
import hashlib
import json
import random
from collections import Counter

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import make_patches
from robot_classify.learn.features import FeaturePipeline
from robot_classify.learn.knn import KNNClassifier
from robot_classify.learn.linear import LinearClassifier
from robot_classify.learn.model import ClassifierModel
from robot_classify.learn.model_io import ModelFormatError, load_model, save_model

SEED = 20240611
N_BYTE_MUTANTS = 150  # per model
RAW = "@@raw{}@@"  # placeholder for JSON text json.dumps cannot write (1e400, deep nesting)
DEEP = "[" * 1000 + "]" * 1000
RAW_VALUES = ["1e400", "-1e400", "9" * 5000, DEEP, '{"a":' * 1000 + "1" + "}" * 1000]
JSON_VALUES = [None, True, False, 0, 1, -1, 2.5, "", "x", "x" * 5000, [], {}, [1, 2], {"a": 1},
               float("inf"), float("-inf"), float("nan"), 10**30, 2**63, -(2**63) - 1, 10**400]


def _build(kind: str, data, tmp_path_factory):
    if kind == "knn":
        model = ClassifierModel(FeaturePipeline("hog_color", center=False, hue_bins=12, color_weight=3.0),
                                KNNClassifier(1, "l2", device="cpu"), data.class_names)
    else:
        model = ClassifierModel(FeaturePipeline("pixels", center=True, pca_dims=4),
                                LinearClassifier("softmax", max_steps=30, device="cpu"), data.class_names)
    model.fit(data.images, data.labels)
    return save_model(model, tmp_path_factory.mktemp(kind) / f"{kind}.safetensors")


@pytest.fixture(scope="module", params=["knn", "linear"])
def original(request, tmp_path_factory):
    data = make_patches(5, 3, seed=3)
    path = _build(request.param, data, tmp_path_factory)
    probe = make_patches(3, 3, seed=4).images
    model = load_model(path, device="cpu")
    labels, proba = model.predict(probe)
    return {"kind": request.param, "path": path, "probe": probe, "settings": _settings(model),
            "labels": labels, "proba": proba, "tensors": load_file(str(path)), "meta": _read_meta(path)}


def _settings(model):
    """What defines the model besides its tensors; equal probe predictions alone could hide k 1 -> 5."""
    clf = model.classifier
    params = ("k", "metric", "weights") if model.kind == "knn" else \
        ("loss", "reg", "lr", "max_steps", "batch_size", "momentum", "tol", "solver", "seed")
    return model.class_names, model.features.config(), model.kind, {p: getattr(clf, p) for p in params}


def _read_meta(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return json.loads(f.metadata()["robot_classify"])


def _sign(meta):
    body = {k: v for k, v in meta.items() if k != "metadata_sha256"}
    meta["metadata_sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
                                             ).hexdigest()


def _paths(value, prefix=()):
    """Every field's path: object keys and array indices, containers included."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield prefix + (key,)
        yield from _paths(child, prefix + (key,))


def _mutations(value, rng):
    """(label, new value or a RAW placeholder index, or `...` for delete) for one field."""
    yield "delete", ...
    for v in JSON_VALUES:
        yield f"set {v!r:.20}", v
    for i, _ in enumerate(RAW_VALUES):
        yield f"raw {RAW_VALUES[i][:12]}", RAW.format(i)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for v in (value + 1, value - 1, value * 2, -value, value + 0.5):
            yield f"number {v!r}", v
    if isinstance(value, bool):
        yield "not", not value
    if isinstance(value, str) and value:
        for _ in range(3):
            i, bit = rng.randrange(len(value)), 1 << rng.randrange(7)
            yield f"bitflip {i}", value[:i] + chr(ord(value[i]) ^ bit) + value[i + 1:]
        yield "append", value + "x"
    if isinstance(value, list) and value:
        yield "duplicate first", value + [value[0]]
        yield "drop last", value[:-1]


def _apply(meta, path, new):
    meta = copy.deepcopy(meta)
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    if new is ...:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return meta


def _text(meta):
    text = json.dumps(meta)
    for i, raw in enumerate(RAW_VALUES):
        text = text.replace(json.dumps(RAW.format(i)), raw)
    return text


def _metadata_mutants(meta, rng):
    """(label, metadata text, edited meta or None) for every field and mutation, plus whole-text ones."""
    for path in _paths(meta):
        old = meta
        for key in path:
            old = old[key]
        for label, new in _mutations(old, rng):
            mutated = _apply(meta, path, new)
            yield f"{'.'.join(map(str, path))}: {label}", mutated
    good = json.dumps(meta)
    for label, text in [("empty", ""), ("null", "null"), ("array", "[]"), ("object", "{}"), ("huge", "1e400"),
                        ("deep array", DEEP), ("deep object", RAW_VALUES[4]), ("trailing", good + "x"),
                        ("cut", good[:-1]), ("duplicate key", good[:-1] + ', "format": "robot_classify.model"}'),
                        ("2 MB", good[:-1] + ', "pad": "' + "x" * (2 << 20) + '"}')]:
        yield f"whole: {label}", text


def _outcome(path, original):
    """'rejected' or 'identical'; raises AssertionError for anything else."""
    try:
        model = load_model(path, device="cpu")
    except ModelFormatError as e:
        assert str(e).startswith(str(path)), e
        return "rejected"
    labels, proba = model.predict(original["probe"])
    assert _settings(model) == original["settings"]
    np.testing.assert_array_equal(labels, original["labels"])
    np.testing.assert_array_equal(proba, original["proba"])
    return "identical"


def _write(path, tensors, text):
    save_file(tensors, str(path), metadata={"robot_classify": text})


@pytest.mark.parametrize("resign", [False, True], ids=["damaged", "resigned"])
def test_metadata_mutants_are_rejected_or_identical(original, tmp_path, resign):
    rng = random.Random(SEED)
    path = tmp_path / "mutant.safetensors"
    failures, counts = [], Counter()
    for label, mutated in _metadata_mutants(original["meta"], rng):
        if isinstance(mutated, str):
            text = mutated
        else:
            if resign and RAW[:5] not in json.dumps(mutated) and "metadata_sha256" in mutated:
                _sign(mutated)
            text = _text(mutated)
        _write(path, original["tensors"], text)
        try:
            if resign:  # a consistent edit may be another valid model: it must still load cleanly and work
                try:
                    model = load_model(path, device="cpu")
                    _, proba = model.predict(original["probe"])
                    assert np.isfinite(proba).all()
                    outcome = "loaded"
                except ModelFormatError:
                    outcome = "rejected"
            else:
                outcome = _outcome(path, original)
        except BaseException as e:  # noqa: B036 - report whatever escapes (pyo3's PanicException is one)
            if isinstance(e, KeyboardInterrupt):
                raise
            failures.append(f"{label}: {type(e).__name__}: {str(e)[:200]}")
            continue
        counts[outcome] += 1
    assert not failures, "\n".join(failures[:30])
    assert counts["rejected"] > 100, counts


def test_random_byte_damage_is_rejected_or_identical(original, tmp_path):
    rng = random.Random(SEED + 1)
    raw = original["path"].read_bytes()
    header_end = 8 + int.from_bytes(raw[:8], "little")
    path = tmp_path / "mutant.safetensors"
    failures, counts = [], Counter()
    for i in range(N_BYTE_MUTANTS):
        data = bytearray(raw)
        kind = ("header flip", "flip", "truncate")[i % 3]
        if kind == "truncate":
            data = data[:rng.randrange(len(data))]
        else:
            hi = header_end if kind == "header flip" else len(data)
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(hi)] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        try:
            outcome = _outcome(path, original)
        except BaseException as e:  # noqa: B036
            if isinstance(e, KeyboardInterrupt):
                raise
            failures.append(f"{kind} #{i}: {type(e).__name__}: {str(e)[:200]}")
            continue
        counts[outcome] += 1
    assert not failures, "\n".join(failures[:30])
    assert counts["rejected"] > N_BYTE_MUTANTS // 2, counts


@pytest.mark.parametrize("header", [
    {"t": {"dtype": "F32", "shape": [2**32, 2**32, 2**32], "data_offsets": [0, 0]}},
    {"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}},
    {"t": {"dtype": "U8", "shape": [4], "data_offsets": [2**64 - 2, 2**64 + 2]}},
    {"t": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}},
    {"t": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}},
    {"t": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}},
    {"__metadata__": {"robot_classify": 5}},
    {"__metadata__": {"robot_classify": "{}"}, "t": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}},
], ids=["overflowing shape", "negative shape", "offsets past 2**64", "reversed offsets", "bf16", "f8",
        "metadata not a string", "empty metadata"])
def test_crafted_safetensors_headers_are_rejected(tmp_path, header):
    """What a byte flip cannot reach but a hand-made file can: the parser's own failures."""
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path = tmp_path / "crafted.safetensors"
    path.write_bytes(len(text).to_bytes(8, "little") + text + bytes(4))
    with pytest.raises(ModelFormatError):
        load_model(path)

