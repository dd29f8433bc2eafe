import numpy as np
import pytest
import torch

from robot_classify.learn.linear import LinearClassifier, softmax_loss, svm_loss


def naive_svm_loss(scores, y):
    total = 0.0
    for s, t in zip(scores, y):
        total += sum(max(0.0, s[j] - s[t] + 1.0) for j in range(len(s)) if j != t)
    return total / len(y)


def test_svm_loss_matches_loop_definition():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(8, 5))
    y = rng.integers(0, 5, 8)
    got = svm_loss(torch.tensor(s), torch.tensor(y)).item()
    assert got == pytest.approx(naive_svm_loss(s, y))


def test_softmax_loss_matches_definition_and_is_stable():
    s = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    y = np.array([0, 2])
    got = softmax_loss(torch.tensor(s), torch.tensor(y)).item()
    p = np.exp(s[1] - s[1].max()) / np.exp(s[1] - s[1].max()).sum()
    assert got == pytest.approx((0.0 - np.log(p[2])) / 2)


def test_svm_gradient_matches_analytic_form():
    """The lecture's vectorised dW: autograd gives the same."""
    rng = np.random.default_rng(1)
    X = torch.tensor(rng.normal(size=(6, 4)))
    y = torch.tensor(rng.integers(0, 3, 6))
    W = torch.tensor(rng.normal(size=(3, 4)), requires_grad=True)
    svm_loss(X @ W.T, y).backward()
    scores = (X @ W.T).detach().numpy()
    margins = scores - scores[np.arange(6), y.numpy()][:, None] + 1
    mask = (margins > 0).astype(float)
    mask[np.arange(6), y.numpy()] = 0
    mask[np.arange(6), y.numpy()] = -mask.sum(1)
    dW = mask.T @ X.numpy() / 6
    np.testing.assert_allclose(W.grad.numpy(), dW, atol=1e-10)


@pytest.mark.parametrize("loss", ["svm", "softmax"])
def test_linear_learns_separable_data(loss, patches):
    X = patches.images.reshape(len(patches), -1).astype(np.float32) / 255 - 0.5
    clf = LinearClassifier(loss=loss, solver="sgd", tol=1e-3, max_steps=1000, device="cpu").fit(X, patches.labels)
    assert (clf.predict(X) == patches.labels).mean() == 1.0
    np.testing.assert_allclose(clf.predict_proba(X).sum(1), 1.0)
    t = clf.templates()
    assert t.shape == (3, 32, 32, 3) and t.dtype == np.uint8


@pytest.mark.parametrize("kwargs, message", [
    ({"loss": "hinge2"}, "loss must be one of"),
    ({"reg": -1.0}, "reg must be"),
    ({"reg": float("nan")}, "reg must be"),
    ({"lr": 0.0}, "lr must be > 0"),
    ({"max_steps": 0}, "max_steps must be"),
    ({"batch_size": 0}, "batch_size must be"),
    ({"solver": "newton"}, "solver must be one of"),
])
def test_bad_linear_hyperparameters_rejected_by_fit(kwargs, message):
    clf = LinearClassifier(**kwargs)  # scikit-learn's convention: __init__ stores, fit validates
    with pytest.raises(ValueError, match=message):
        clf.fit(np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1]))


def test_too_large_a_learning_rate_restarts_at_half_the_rate_instead_of_diverging():
    """Found from outside: hinge loss at reg 1 and lr 10 overshoots the weight decay alone (lr x reg
    > 2), and `train` ended in a FloatingPointError traceback."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(-1, 1, (200, 8)), rng.normal(1, 1, (200, 8))]).astype(np.float32)
    y = np.repeat([0, 1], 200)
    clf = LinearClassifier("svm", reg=1.0, lr=10.0, max_steps=2000, solver="sgd", quiet=True).fit(X, y)
    assert np.isfinite(clf.coef_).all() and any(not np.isfinite(v) for v in clf.loss_history_)
    assert (clf.predict(X) == y).mean() > 0.8
