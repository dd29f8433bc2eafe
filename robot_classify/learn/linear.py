"""Linear classifier f(x) = Wx + b with multiclass SVM (hinge) or softmax loss + L2 regularisation.

What makes it converge at every data size (30 to 500,000 samples):
- features are standardised (per-feature mean and std, then divided by sqrt(D) so that a
  sample has unit norm on average and one learning-rate grid fits any feature size); the
  statistics are folded into `coef_` / `intercept_` after training, so prediction is one
  matmul on raw features and a model file holds the same two tensors as before;
- the budget is gradient steps (`max_steps`), not epochs, and a stopping rule on the training
  objective ends training: the objective is averaged over windows of about an epoch (at
  least 10, at most 200 steps); a window that does not improve on the best by `tol` halves the
  learning rate, and the fifth halving stops (converged). A window whose objective is no longer
  finite (a learning rate too large for the data or for `reg`: with the hinge loss lr x reg > 2
  overshoots the weight decay alone) restarts from the last improving window's weights at half
  the rate, up to `_MAX_RESTARTS` times. Too large a learning rate therefore costs a few
  halvings instead of a diverged model (found from outside: lr 10 at reg 1 had ended in a
  traceback);
- `solver="auto"` uses L-BFGS on the same objective (full batch, float64, strong-Wolfe line
  search) when the data is small (n x D <= 2e7 values: every `train` on patch sets up to
  ~45,000 HOG+colour patches or ~6,500 raw-pixel patches), because it reaches the optimum
  without a learning rate to tune; larger data uses minibatch SGD with momentum in torch,
  on CUDA when present (the lecture's method).

The two losses are the lecture's `svm_loss` / `softmax_loss`, vectorised over the batch; the
gradient comes from autograd (the analytic gradients are checked against autograd in the
tests). The estimator follows scikit-learn's conventions (`__init__` stores, `fit` validates)
and passes `check_estimator`.
"""
from __future__ import annotations

import math
import sys
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .calibration import Evidence
from .device import resolve_device
from .features import PATCH_SIZE
from .protocol import check_class_indices, check_tensor, validate_data

LOSSES = ("svm", "softmax")


def svm_loss(scores: torch.Tensor, y: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Mean multiclass hinge loss: sum over j != y of max(0, s_j - s_y + margin)."""
    correct = scores.gather(1, y[:, None])
    hinge = (scores - correct + margin).clamp_min(0.0)
    hinge = hinge.scatter(1, y[:, None], 0.0)
    return hinge.sum(1).mean()


def softmax_loss(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of softmax(scores); log-sum-exp keeps it stable for large scores."""
    return F.cross_entropy(scores, y)


SOLVERS = ("auto", "sgd", "lbfgs")
LBFGS_MAX_VALUES = 20_000_000  # n x D up to which solver="auto" picks L-BFGS (float64: 160 MB)
LBFGS_MAX_ITER = 300  # L-BFGS iterations at most; beyond, nearly separable data only grows |W| (test accuracy flat)
_MAX_RESTARTS = 10  # restarts at half the rate after a non-finite window (`_fit_sgd`)
_MAX_HALVINGS = 5  # learning-rate halvings before SGD calls the objective converged
_PATIENCE = 2  # windows without progress before a halving (minibatch noise)


def _number(name: str, value, lo: float = 0.0) -> float:
    # The chained comparison refuses NaN, inf and ints too large for a float (10**400),
    # where math.isfinite would raise OverflowError.
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not lo <= value <= sys.float_info.max:
        raise ValueError(f"{name} must be a finite number >= {lo:g}, got {value!r}")
    return float(value)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _column_mean_std(X: np.ndarray, rows: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std, accumulated in float64 over row blocks: exact enough for
    500,000 rows without a float64 copy of X (the two-pass formula, no cancellation)."""
    n = X.shape[0]
    total = np.zeros(X.shape[1])
    for s in range(0, n, rows):
        total += X[s:s + rows].sum(0, dtype=np.float64)
    mean = total / n
    sq = np.zeros(X.shape[1])
    for s in range(0, n, rows):
        d = X[s:s + rows] - mean.astype(X.dtype)
        sq += np.einsum("ij,ij->j", d, d, dtype=np.float64)
    return mean, np.sqrt(sq / n)


class LinearClassifier(ClassifierMixin, BaseEstimator):
    """Multiclass linear classifier; `coef_` is W (C x D) and `intercept_` b (C,) on raw features.

    Parameters
    ----------
    loss: "softmax" (cross-entropy) or "svm" (multiclass hinge, margin 1).
    reg: L2 strength: objective = mean loss + reg * |W|^2, W on standardised features.
    lr: SGD learning rate on standardised features (unused by L-BFGS).
    max_steps: budget of SGD gradient steps, or of L-BFGS iterations.
    batch_size, momentum: SGD minibatch size and heavy-ball momentum.
    tol: relative improvement of the objective that counts as progress (stopping rule).
    solver: "auto" (L-BFGS for n x D <= 2e7, else SGD), "sgd" or "lbfgs".
    device, seed, quiet: where SGD runs, its shuffling and progress bar.

    Fitted: `classes_`, `n_features_in_`, `coef_`, `intercept_`, `mean_`, `scale_` (the
    standardisation, already folded into coef_/intercept_), `means_` (class means, for the open
    set: `novelty`), `solver_`, `n_iter_`,
    `converged_` and `loss_history_` (objective per SGD window, or per L-BFGS evaluation).
    """

    kind = "linear"
    calibration_method = "temperature"  # learn.calibration: softmax(scores / T)

    def __init__(self, loss: str = "softmax", reg: float = 1e-4, lr: float = 2.0, max_steps: int = 5000,
                 batch_size: int = 256, momentum: float = 0.9, tol: float = 1e-4, solver: str = "auto",
                 device: str = "auto", seed: int = 0, quiet: bool = True) -> None:
        self.loss = loss
        self.reg = reg
        self.lr = lr
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.momentum = momentum
        self.tol = tol
        self.solver = solver
        self.device = device
        self.seed = seed
        self.quiet = quiet

    def check_params(self) -> None:
        """Every hyperparameter's type and range, with a message naming it (fit calls this;
        model_io calls it on parameters read from a file)."""
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        _number("reg", self.reg)
        _number("tol", self.tol)
        if _number("lr", self.lr) <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if _number("momentum", self.momentum) >= 1:
            raise ValueError(f"momentum must be < 1, got {self.momentum!r}")
        _positive_int("max_steps", self.max_steps)
        _positive_int("batch_size", self.batch_size)
        # torch.Generator.manual_seed takes [-2**63, 2**64); refuse the rest here, not mid-training.
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) \
                or not -(1 << 63) <= self.seed < (1 << 64):
            raise ValueError(f"seed must be an integer in [-2**63, 2**64), got {self.seed!r}")

    def choose_solver(self, n_samples: int, n_features: int) -> str:
        """What `fit` will use for data of this size (the CLI prints it)."""
        if self.solver != "auto":
            return self.solver
        return "lbfgs" if n_samples * n_features <= LBFGS_MAX_VALUES else "sgd"

    def fit(self, X: np.ndarray, y: np.ndarray) -> "LinearClassifier":
        self.check_params()
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        n, d = X.shape
        # Standardise: per-feature mean and std (constant features keep scale 1), then / sqrt(D).
        mean, std = _column_mean_std(X)
        std = np.where(std > 1e-12 * max(float(std.max()), 1e-300), std, 1.0) * math.sqrt(d)
        self.mean_, self.scale_ = mean.astype(np.float32), std.astype(np.float32)
        self.solver_ = self.choose_solver(n, d)
        if len(self.classes_) == 1:  # one class: nothing to separate; always predict it
            W, b = np.zeros((1, d)), np.zeros(1)
            self.n_iter_, self.converged_, self.loss_history_ = 0, True, []
        elif self.solver_ == "lbfgs":
            W, b = self._fit_lbfgs(X, yi, mean, std)
        else:
            W, b = self._fit_sgd(X, yi, mean, std)
        coef = W / std  # fold the standardisation: W (x - m) / s + b = (W / s) x + (b - (W / s) m)
        self.coef_ = coef.astype(np.float32)
        self.intercept_ = (b - coef @ mean).astype(np.float32)
        # Class means: the open-set novelty (`novelty`), what a linear model knows of "far".
        onehot = np.zeros((len(self.classes_), n), np.float32)
        onehot[yi, np.arange(n)] = 1.0
        self.means_ = (onehot @ X) / onehot.sum(1, keepdims=True)  # one GEMM, no per-class copies
        return self

    def novelty(self, X: np.ndarray) -> np.ndarray | None:
        """Distance to the nearest class mean in standardised features (diagonal Mahalanobis,
        averaged over features): large for inputs unlike every class's training data, where the
        scores of a linear model can still be confident. None for a model file without means."""
        if getattr(self, "means_", None) is None:
            return None
        Z = np.asarray(X, np.float64) / self.scale_
        M = self.means_ / self.scale_
        d2 = (Z * Z).sum(1)[:, None] - 2 * Z @ M.T + (M * M).sum(1)[None, :]
        return np.maximum(d2.min(1), 0.0)

    def _objective(self, W: torch.Tensor, b: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss_fn = svm_loss if self.loss == "svm" else softmax_loss
        return loss_fn(X @ W.T + b, y) + self.reg * (W * W).sum()

    def _fit_lbfgs(self, X: np.ndarray, y: np.ndarray, mean: np.ndarray, std: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        Xt = torch.from_numpy((X - mean) / std)  # float64: small data, exact line searches
        yt = torch.from_numpy(y.astype(np.int64))
        W = torch.zeros(len(self.classes_), X.shape[1], dtype=torch.float64, requires_grad=True)
        b = torch.zeros(len(self.classes_), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=min(int(self.max_steps), LBFGS_MAX_ITER), history_size=20,
                                tolerance_grad=1e-7, line_search_fn="strong_wolfe",
                                # the hinge is not smooth: L-BFGS creeps near its kinks, so "converged"
                                # there means the objective moves less than 1e-6 per iteration
                                tolerance_change=1e-6 if self.loss == "svm" else 1e-10)
        self.loss_history_: list[float] = []

        def closure() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            loss = self._objective(W, b, Xt, yt)
            loss.backward()
            self.loss_history_.append(float(loss.detach()))
            return loss

        opt.step(closure)
        self.n_iter_ = int(opt.state[opt._params[0]].get("n_iter", 0))
        self.converged_ = self.n_iter_ < min(int(self.max_steps), LBFGS_MAX_ITER)
        if not math.isfinite(self.loss_history_[-1]):
            raise FloatingPointError(f"L-BFGS diverged (objective {self.loss_history_[-1]})")
        if not self.converged_:
            warnings.warn(f"L-BFGS used all {self.n_iter_} iterations", ConvergenceWarning, stacklevel=3)
        return W.detach().numpy(), b.detach().numpy()

    def _fit_sgd(self, X: np.ndarray, y: np.ndarray, mean: np.ndarray, std: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        dev = resolve_device(self.device)
        gen = torch.Generator().manual_seed(int(self.seed))
        Xt = torch.from_numpy(np.ascontiguousarray(X)).to(dev)
        mt = torch.from_numpy(mean.astype(np.float32)).to(dev)
        st = torch.from_numpy(std.astype(np.float32)).to(dev)
        yt = torch.from_numpy(y.astype(np.int64)).to(dev)
        n = X.shape[0]
        bs = min(int(self.batch_size), n)
        W = torch.zeros(len(self.classes_), X.shape[1], device=dev, requires_grad=True)
        b = torch.zeros(len(self.classes_), device=dev, requires_grad=True)
        opt = torch.optim.SGD([W, b], lr=float(self.lr), momentum=float(self.momentum))
        loss_fn = svm_loss if self.loss == "svm" else softmax_loss
        window = max(50, min(500, math.ceil(n / bs)))
        self.loss_history_ = []
        best, halvings, stalled, total, order, pos = math.inf, 0, 0, torch.zeros((), device=dev), None, n
        restarts, kept = 0, (W.detach().clone(), b.detach().clone())  # the last improving window's weights
        self.converged_ = False
        step = 0
        for step in tqdm(range(int(self.max_steps)), desc=f"linear/{self.loss}", disable=self.quiet, leave=False):
            if pos + bs > n:  # a fresh permutation per pass; the tail of the last one is dropped
                order, pos = torch.randperm(n, generator=gen).to(dev), 0
            bi = order[pos:pos + bs]
            pos += bs
            # Standardise through the weights, not the batch: (x - m) / s . W = x . (W / s) - m . (W / s),
            # a C x D operation instead of two passes over the B x D batch.
            Ws = W / st
            scores = Xt[bi] @ Ws.T + (b - Ws @ mt)
            loss = loss_fn(scores, yt[bi]) + self.reg * (W * W).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
            if (step + 1) % window:
                continue
            mean_loss = float(total) / window
            total.zero_()
            self.loss_history_.append(mean_loss)
            if not math.isfinite(mean_loss):
                restarts += 1
                if restarts > _MAX_RESTARTS:
                    raise FloatingPointError(f"training diverged (objective {mean_loss}) at lr={self.lr} and at "
                                             f"{_MAX_RESTARTS} halvings of it; lower lr or reg")
                with torch.no_grad():
                    W.copy_(kept[0])
                    b.copy_(kept[1])
                opt = torch.optim.SGD([W, b], lr=opt.param_groups[0]["lr"] * 0.5, momentum=float(self.momentum))
                stalled = 0
                continue
            if mean_loss < best * (1 - self.tol):
                best, stalled = mean_loss, 0
                kept = (W.detach().clone(), b.detach().clone())
                continue
            stalled += 1
            if stalled < _PATIENCE:
                continue
            halvings, stalled = halvings + 1, 0
            if halvings >= _MAX_HALVINGS:
                self.converged_ = True
                break
            for group in opt.param_groups:
                group["lr"] *= 0.5
        self.n_iter_ = step + 1
        if not self.converged_:
            warnings.warn(f"SGD used all max_steps={self.max_steps} steps before the objective stopped improving; "
                          "raise max_steps", ConvergenceWarning, stacklevel=3)
        return W.detach().cpu().double().numpy(), b.detach().cpu().double().numpy()

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Class scores f(x) = Wx + b, shape (n, C): the lecture's 'scores', one column per class."""
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=None)
        return np.asarray(X, np.float32) @ self.coef_.T + self.intercept_

    tensor_names = frozenset({"linear.W", "linear.b", "linear.classes", "linear.means", "linear.scale"})
    optional_tensor_names = frozenset({"linear.means", "linear.scale"})  # files before format 3 have no means

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The model file's part (protocol): hyperparameters; W, b (standardisation folded in), classes."""
        check_is_fitted(self, "coef_")
        params = {"loss": self.loss, "reg": float(self.reg), "lr": float(self.lr), "max_steps": int(self.max_steps),
                  "batch_size": int(self.batch_size), "momentum": float(self.momentum), "tol": float(self.tol),
                  "solver": self.solver, "seed": int(self.seed)}
        tensors = {"linear.W": self.coef_.astype(np.float32), "linear.b": self.intercept_.astype(np.float32),
                   "linear.classes": self.classes_.astype(np.int64)}
        if getattr(self, "means_", None) is not None:  # a model loaded from a format-2 file has none
            tensors.update({"linear.means": self.means_.astype(np.float32),
                            "linear.scale": self.scale_.astype(np.float32)})
        return params, tensors

    @classmethod
    def from_state(cls, params: dict[str, Any], tensors: dict[str, np.ndarray], n_features: int, n_classes: int,
                   uint8_features: bool, device: str) -> "LinearClassifier":
        W = check_tensor(tensors, "linear.W", "float32", (None, n_features))
        b = check_tensor(tensors, "linear.b", "float32", (len(W),))
        classes = check_tensor(tensors, "linear.classes", "int64", (len(W),))
        check_class_indices(classes, "linear.classes", n_classes)
        if not (np.diff(classes) > 0).all():
            raise ValueError("linear.classes must be strictly increasing")
        clf = cls(device=device, **params)
        clf.coef_, clf.intercept_, clf.classes_, clf.n_features_in_ = W, b, classes, n_features
        clf.means_ = clf.scale_ = None
        if "linear.means" in tensors or "linear.scale" in tensors:  # format 3; older files have no novelty
            clf.means_ = check_tensor(tensors, "linear.means", "float32", (len(W), n_features))
            clf.scale_ = check_tensor(tensors, "linear.scale", "float32", (n_features,))
            if not (clf.scale_ > 0).all():
                raise ValueError("tensor 'linear.scale' must be > 0")
        return clf

    def evidence(self, X: np.ndarray, k: int | None = None) -> Evidence:
        """The classifier protocol's one call (`learn.calibration.Evidence`): the class scores
        (logits), which calibration divides by a temperature. `k` is for kNN and ignored here."""
        X = validate_data(self, X, reset=False, dtype=None) if hasattr(self, "coef_") else X
        s = self.scores(X).astype(np.float64)
        e = np.exp(s - s.max(1, keepdims=True))
        return Evidence(s.argmax(1), e / e.sum(1, keepdims=True), s, None, self.novelty(X))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn's convention: `scores`, but one column s1 - s0 for two classes."""
        s = self.scores(X)
        return s[:, 1] - s[:, 0] if s.shape[1] == 2 else s

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """softmax of the scores (uncalibrated; `ClassifierModel` applies the stored temperature)."""
        s = self.scores(X).astype(np.float64)
        e = np.exp(s - s.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        s = self.scores(X)
        return self.classes_[s.argmax(1)]

    def templates(self, shape: tuple[int, int, int] = (PATCH_SIZE, PATCH_SIZE, 3)) -> np.ndarray:
        """W rows as images (C, H, W, 3), rescaled to uint8: what each class 'looks for'."""
        if self.coef_.shape[1] != int(np.prod(shape)):
            raise ValueError(f"templates need raw-pixel features of size {np.prod(shape)}, "
                             f"this model has {self.coef_.shape[1]}")
        W = self.coef_.reshape(-1, *shape)
        lo, hi = W.min(axis=(1, 2, 3), keepdims=True), W.max(axis=(1, 2, 3), keepdims=True)
        return (255 * (W - lo) / np.maximum(hi - lo, 1e-12)).astype(np.uint8)
