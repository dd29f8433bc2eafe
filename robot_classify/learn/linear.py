"""Linear classifier f(x) = Wx + b with multiclass SVM (hinge) or softmax loss + L2 regularisation.

Trained by minibatch SGD with momentum in torch, on CUDA when present. The two loss
functions are the lecture's `svm_loss` / `softmax_loss`, vectorised over the batch; the
gradient comes from autograd rather than a hand-derived dW, which is what a maintained
codebase would do (the analytic gradients are checked against autograd in the tests).
"""
from __future__ import annotations

import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .device import resolve_device
from .features import PATCH_SIZE
from .knn import check_features, check_training_data

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


class LinearClassifier:
    """sklearn-shaped linear classifier; `coef_` is W (C x D), `intercept_` is b (C,)."""

    def __init__(self, loss: str = "softmax", reg: float = 1e-4, lr: float = 1e-2, epochs: int = 20,
                 batch_size: int = 256, momentum: float = 0.9, device: str = "auto", seed: int = 0,
                 quiet: bool = True) -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        for name, value in (("reg", reg), ("lr", lr), ("momentum", momentum)):
            # The chained comparison refuses NaN, inf and ints too large for a float (10**400),
            # where math.isfinite would raise OverflowError.
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 <= value <= sys.float_info.max:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        if momentum >= 1:
            raise ValueError(f"momentum must be < 1, got {momentum!r}")
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        # torch.Generator.manual_seed takes [-2**63, 2**64); refuse the rest here, not mid-training.
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not -(1 << 63) <= seed < (1 << 64):
            raise ValueError(f"seed must be an integer in [-2**63, 2**64), got {seed!r}")
        self.loss, self.reg, self.lr, self.momentum = loss, float(reg), float(lr), float(momentum)
        self.epochs, self.batch_size, self.seed, self.quiet = int(epochs), int(batch_size), int(seed), quiet
        self.device = device

    def fit(self, X: np.ndarray, y: np.ndarray) -> "LinearClassifier":
        X, y = check_training_data(X, y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        self.n_features_in_ = X.shape[1]
        dev = resolve_device(self.device)
        gen = torch.Generator().manual_seed(self.seed)
        Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(dev)
        yt = torch.from_numpy(yi.astype(np.int64)).to(dev)
        W = (0.001 * torch.randn(len(self.classes_), X.shape[1], generator=gen)).to(dev).requires_grad_()
        b = torch.zeros(len(self.classes_), device=dev, requires_grad=True)
        opt = torch.optim.SGD([W, b], lr=self.lr, momentum=self.momentum)
        loss_fn = svm_loss if self.loss == "svm" else softmax_loss
        n = X.shape[0]
        steps = self.epochs * math.ceil(n / self.batch_size)
        # Cosine decay: large early steps, small late ones; less sensitive to lr than constant.
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        self.loss_history_: list[float] = []
        for _ in tqdm(range(self.epochs), desc=f"linear/{self.loss}", disable=self.quiet, leave=False):
            order = torch.randperm(n, generator=gen).to(dev)
            total = 0.0
            for s in range(0, n, self.batch_size):
                bi = order[s:s + self.batch_size]
                scores = Xt[bi] @ W.T + b
                loss = loss_fn(scores, yt[bi]) + self.reg * (W * W).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(bi)
            self.loss_history_.append(total / n)
            if not math.isfinite(self.loss_history_[-1]):
                raise FloatingPointError(f"training diverged (loss {self.loss_history_[-1]}); lower lr={self.lr}")
        self.coef_ = W.detach().cpu().numpy()
        self.intercept_ = b.detach().cpu().numpy()
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Class scores f(x) = Wx + b, shape (n, C)."""
        if not hasattr(self, "coef_"):
            raise RuntimeError("LinearClassifier is not fitted; call fit(X, y) first")
        X = check_features(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted with {self.n_features_in_}")
        return X.astype(np.float32) @ self.coef_.T + self.intercept_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        s = self.decision_function(X).astype(np.float64)
        e = np.exp(s - s.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(1)]

    def templates(self, shape: tuple[int, int, int] = (PATCH_SIZE, PATCH_SIZE, 3)) -> np.ndarray:
        """W rows as images (C, H, W, 3), rescaled to uint8: what each class 'looks for'."""
        if self.coef_.shape[1] != int(np.prod(shape)):
            raise ValueError(f"templates need raw-pixel features of size {np.prod(shape)}, "
                             f"this model has {self.coef_.shape[1]}")
        W = self.coef_.reshape(-1, *shape)
        lo, hi = W.min(axis=(1, 2, 3), keepdims=True), W.max(axis=(1, 2, 3), keepdims=True)
        return (255 * (W - lo) / np.maximum(hi - lo, 1e-12)).astype(np.uint8)
