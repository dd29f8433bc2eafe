import numpy as np
import pytest

from robot_classify.learn.neighbors import ExactIndex


def reference_knn(X, Q, k, metric):
    """float64 brute force, ties by lower index: the definition of 'exact'."""
    X64, Q64 = X.astype(np.float64), Q.astype(np.float64)
    if metric == "cosine":
        X64 = X64 / np.maximum(np.linalg.norm(X64, axis=1, keepdims=True), 1e-300)
        Q64 = Q64 / np.maximum(np.linalg.norm(Q64, axis=1, keepdims=True), 1e-300)
    diff = Q64[:, None, :] - X64[None, :, :]
    d = np.abs(diff).sum(2) if metric == "l1" else (diff**2).sum(2)
    idx = np.stack([np.lexsort((np.arange(len(X)), row))[:k] for row in d])
    return idx


def correlated_images(n, d=3072, seed=0):
    """Low-rank + noise uint8 vectors: image-like, so the PCA bound prunes as it does on patches."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(16, d))
    x = 128 + rng.normal(size=(n, 16)) @ basis * 8 + rng.normal(size=(n, d)) * 6
    return np.clip(x, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("metric", ["l1", "l2", "cosine"])
def test_exact_index_equals_float64_reference_on_images(metric):
    X = correlated_images(3000)
    Q = correlated_images(40, seed=1)
    index = ExactIndex(metric, device="cpu")
    index.add(X)
    _, idx = index.search(Q, 7)
    np.testing.assert_array_equal(idx, reference_knn(X, Q, 7, metric))
    if metric == "l2":
        assert index.stats["brute_force"] == 0  # the bound did the pruning


@pytest.mark.parametrize("n_queries", [10, 70])  # OpenCV fallback, float32-GEMM fallback
def test_exact_index_equals_reference_on_white_noise_fallback(n_queries):
    rng = np.random.default_rng(3)
    X = rng.integers(0, 256, (2000, 3072), dtype=np.uint8)
    Q = rng.integers(0, 256, (n_queries, 3072), dtype=np.uint8)
    index = ExactIndex("l2", device="cpu")
    index.add(X)
    _, idx = index.search(Q, 5)
    np.testing.assert_array_equal(idx, reference_knn(X, Q, 5, "l2"))


def test_exact_index_float_features():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(1500, 200)).astype(np.float32)
    Q = rng.normal(size=(30, 200)).astype(np.float32)
    for metric in ("l1", "l2"):
        index = ExactIndex(metric, device="cpu")
        index.add(X)
        np.testing.assert_array_equal(index.search(Q, 4)[1], reference_knn(X, Q, 4, metric))


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_float_features_far_from_the_data_take_the_gemm_path_exactly(metric):
    """Embeddings of crops unlike the training set (noise, a covered lens) defeat the PCA bound:
    they are answered by the float32 GEMM and its rounding margin, never by re-ranking a large
    share of the rows in float64 one by one (173 ms for a frame of noise on the default model)."""
    rng = np.random.default_rng(6)
    scale = 1 / np.sqrt(np.arange(1, 441))  # a slowly falling spectrum, as embeddings have
    X = (rng.normal(size=(2500, 440)) * scale).astype(np.float32)
    near = X[:4] + (0.01 * rng.normal(size=(4, 440)) * scale).astype(np.float32)
    far = (rng.normal(size=(6, 440)) * scale * 1.5 + 0.3 * scale).astype(np.float32)
    Q = np.concatenate([near, far])
    index = ExactIndex(metric, device="cpu")
    index.add(X)
    _, idx = index.search(Q, 3)
    np.testing.assert_array_equal(idx, reference_knn(X, Q, 3, metric))
    assert index.stats["brute_force"] == 0  # no float64 scan of every row
    assert index.stats["reranked"] < 0.05 * len(X) * len(Q)


@pytest.mark.parametrize("k", [1, 7, 40])
def test_bound_candidates_from_the_top_k_or_a_full_pass_are_exact(k):
    """A tight bound: the candidates come from the wide top-k of the bounds alone; a looser one
    (more noise beside the low-rank structure): from a pass over every row's bound. Both exact."""
    rng = np.random.default_rng(7)
    basis = rng.normal(size=(24, 300))
    for noise, path in ((0.05, "top-k"), (3.0, "full pass")):
        X = (rng.normal(size=(3000, 24)) @ basis + noise * rng.normal(size=(3000, 300))).astype(np.float32)
        Q = (rng.normal(size=(12, 24)) @ basis + noise * rng.normal(size=(12, 300))).astype(np.float32)
        index = ExactIndex("l2", device="cpu")
        index.add(X)
        d, idx = index.search(Q, k)
        np.testing.assert_array_equal(idx, reference_knn(X, Q, k, "l2"), err_msg=path)
        ref = np.sqrt(((Q[:, None, :].astype(np.float64) - X[idx].astype(np.float64)) ** 2).sum(2))
        np.testing.assert_allclose(d, ref, rtol=1e-12, err_msg=path)
        if path == "top-k":
            assert index.stats["bound_scans"] == 0
        elif k == 1:
            assert index.stats["bound_scans"] > 0  # the path this case is for was taken


def test_ties_are_broken_by_lower_training_index():
    X = np.array([[5, 5], [1, 1], [5, 5], [1, 1]], np.uint8)
    index = ExactIndex("l2", device="cpu")
    index.add(X)
    d, idx = index.search(np.array([[1, 1]], np.uint8), 3)
    assert idx.tolist() == [[1, 3, 0]]
    assert d[0, 0] == 0


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_chunking_gives_identical_results(metric):
    X = correlated_images(2500)
    Q = correlated_images(64, seed=5)
    small = ExactIndex(metric, device="cpu", max_scratch_bytes=1 << 16)
    big = ExactIndex(metric, device="cpu", max_scratch_bytes=1 << 30)
    small.add(X)
    big.add(X)
    ds, i_s = small.search(Q, 6)
    db, i_b = big.search(Q, 6)
    np.testing.assert_array_equal(i_s, i_b)
    np.testing.assert_array_equal(ds, db)


def test_gemm_margin_path_is_exact_on_cpu_tensors():
    """The CUDA path's float32 GEMM + rounding margin + exact re-rank, on CPU so CI covers it."""
    X = correlated_images(1200)
    Q = correlated_images(16, seed=6)
    for metric in ("l1", "l2"):
        index = ExactIndex(metric, device="cpu", bound_dims=0)
        index.add(X)
        cands = index._gemm_candidates(Q, 5)
        got = np.stack([index._rerank(q, c, 5)[1] for q, c in zip(Q, cands)])
        np.testing.assert_array_equal(got, reference_knn(X, Q, 5, metric))


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_search_is_exact_for_patches_and_embeddings(device):
    """On a GPU the candidates come from a float32 pass on the device (a GEMM for L2, cdist for
    L1; uint8 patches and float32 embeddings alike, `cuda` or a numbered device), then the exact
    re-rank: the float64 reference's neighbours, whatever the index holds and however many
    queries a frame has."""
    X = correlated_images(3000)
    Q = correlated_images(45, seed=7)
    rng = np.random.default_rng(8)
    E = rng.normal(size=(5000, 440)).astype(np.float32)
    F = rng.normal(size=(45, 440)).astype(np.float32)
    for data, queries in ((X, Q), (E, F)):
        for metric in ("l1", "l2"):
            index = ExactIndex(metric, device=device)
            index.add(data)
            for n in (1, 10, 45):
                np.testing.assert_array_equal(index.search(queries[:n], 5)[1],
                                              reference_knn(data, queries[:n], 5, metric))


def test_bad_inputs_rejected():
    index = ExactIndex("l2", device="cpu")
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.array([[np.nan, 1.0]]))
    index.add(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="k must be in"):
        index.search(np.zeros((1, 2), np.float32), 4)
    with pytest.raises(ValueError, match="features"):
        index.search(np.zeros((1, 3), np.float32), 1)


def test_memory_is_uint8_plus_small_bound():
    X = correlated_images(4000)
    index = ExactIndex("l2", device="cpu")
    index.add(X)
    assert index.data.dtype == np.uint8
    assert index.nbytes <= X.size * 2  # float16 size of the training set
