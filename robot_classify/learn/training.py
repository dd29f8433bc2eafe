"""Train a `ClassifierModel` from a training split, tuning hyperparameters first if asked."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
import numpy as np

from ..data.datasets import PatchSet, split_validation
from .features import FeaturePipeline, feature_config
from .knn import KNNClassifier
from .linear import LinearClassifier
from .model import ClassifierModel
from .model_io import data_sha256
from .calibration import Calibration, fit_calibration
from .tuning import TuneResult, fold_indices, out_of_fold_evidence, tune_knn, tune_linear

log = logging.getLogger(__name__)

DEFAULT_KS = [1, 3, 5, 7, 9, 11, 15]
# Log grids, wide enough that the choice is rarely at an edge (a warning says when it is). The
# linear model standardises its features (unit norm on average), so one grid fits every feature
# kind. L-BFGS (small data) needs no learning rate: only the SGD solver searches DEFAULT_LRS.
DEFAULT_REGS = [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2]
DEFAULT_LRS = [0.1, 1.0, 10.0]
TUNE_STRATEGIES = ("cv", "val", "none")


@dataclass
class TrainOptions:
    classifier: str = "knn"
    k: str | int = "auto"
    metrics: list[str] = field(default_factory=lambda: ["l2"])
    features: list[str] = field(default_factory=lambda: ["hog_color"])
    pca_dims: int = 0
    tune: str = "cv"
    folds: int = 5
    val_fraction: float = 0.2
    loss: str = "softmax"
    regs: list[float] | None = None
    lrs: list[float] | None = None
    max_steps: int = 5000
    batch_size: int = 256
    solver: str = "auto"
    calibrate: bool = True
    device: str = "auto"
    seed: int = 0
    quiet: bool = False
    name: str = "model"

    def __post_init__(self) -> None:
        if self.classifier not in ("knn", "linear"):
            raise ValueError(f"classifier must be knn or linear, got {self.classifier!r}")
        if self.tune not in TUNE_STRATEGIES:
            raise ValueError(f"tune must be one of {TUNE_STRATEGIES}, got {self.tune!r}")
        if self.k != "auto" and (not str(self.k).isdigit() or int(self.k) < 1):
            raise ValueError(f"k must be 'auto' or a positive integer, got {self.k!r}")


def train_model(train: PatchSet, opts: TrainOptions, val: PatchSet | None = None) -> ClassifierModel:
    """Tune on `val` (or k-fold CV inside `train`), then fit the chosen setting on all of it."""
    if not len(train):
        raise ValueError("the training split is empty")
    if opts.classifier == "knn" and opts.k != "auto" and int(opts.k) > len(train):
        # A user's k is never capped silently: the node would reject the same k for this model.
        raise ValueError(f"k={int(opts.k)} is larger than the training set ({len(train)} patches)")
    if opts.tune == "val" and val is None:
        train, val = split_validation(train, opts.val_fraction, opts.seed)
    result: TuneResult | None = None
    final = train if val is None or opts.tune != "val" else _concat(train, val)
    if opts.classifier == "knn":
        # Only the automatic grid is trimmed to the data; a user's k was checked above.
        ks = ([k for k in DEFAULT_KS if k <= len(train)] or [1]) if opts.k == "auto" else [int(opts.k)]
        if opts.tune != "none" and (len(ks) > 1 or len(opts.metrics) > 1 or len(opts.features) > 1):
            result = tune_knn(train, ks, opts.metrics, opts.features, opts.pca_dims, opts.tune, opts.folds, val,
                              opts.seed, opts.device, opts.quiet)
            best = result.best["params"]
            k, metric, kind = best["k"], best["metric"], best["features"]
        else:
            k, metric, kind = (5 if opts.k == "auto" else int(opts.k)), opts.metrics[0], opts.features[0]
        feat = feature_config(kind, "knn", metric, opts.pca_dims)

        def make() -> KNNClassifier | LinearClassifier:
            return KNNClassifier(min(k, len(final)), metric, device=opts.device)
    else:
        feat = feature_config(opts.features[0], "linear", pca_dims=opts.pca_dims)
        dim = opts.pca_dims or FeaturePipeline(**{**feat, "pca_dims": 0}).fit_transform(final.images[:1]).shape[1]
        solver = LinearClassifier(solver=opts.solver).choose_solver(len(final), dim)
        # L-BFGS has no learning rate: searching one would only repeat identical fits.
        regs, lrs = opts.regs or DEFAULT_REGS, opts.lrs or (DEFAULT_LRS if solver == "sgd" else [1.0])
        if opts.tune != "none" and len(regs) * len(lrs) > 1:
            grid = {"reg": regs, "lr": lrs} if len(lrs) > 1 else {"reg": regs}
            result = tune_linear(train, grid, feat, opts.loss, opts.tune, opts.folds, val,
                                 opts.seed, opts.device, opts.quiet, opts.max_steps, solver)
            reg, lr = result.best["params"]["reg"], result.best["params"].get("lr", lrs[0])
        else:
            reg, lr = regs[0], lrs[0]
        log.info("linear classifier: %s solver (%d samples)", solver, len(final))

        def make() -> KNNClassifier | LinearClassifier:
            return LinearClassifier(opts.loss, reg, lr, opts.max_steps, opts.batch_size, device=opts.device,
                                    seed=opts.seed, quiet=opts.quiet, solver=solver)
    for warning in result.warnings if result is not None else []:
        log.warning("tuning: %s", warning)
    model = ClassifierModel(FeaturePipeline(**feat), make(), list(train.class_names))
    model.fit(final.images, final.labels)
    if opts.calibrate:
        model.calibration = _calibrate(train, val if opts.tune == "val" else None, make, feat, opts)
    model.meta = {"name": opts.name,
                  "training": {"sha256": data_sha256(final.images, final.labels), "n_samples": len(final)},
                  "tuning": result.to_json() if result else {}}
    return model


def _calibrate(train: PatchSet, val: PatchSet | None, make, feat: dict, opts: TrainOptions) -> Calibration | None:
    """Calibration and open-set threshold from predictions on data the fitted setting did not see:
    the validation split, else the CV folds of the training data (grouped by scene when it can)."""
    if val is not None and len(val):
        splits = [(train, val)]
    elif len(train) >= 2 * opts.folds and len(np.unique(train.labels)) > 1:
        splits = [(train.subset(tr), train.subset(va)) for tr, va in fold_indices(train, opts.folds, opts.seed)]
    else:
        log.warning("too little data to calibrate (%d samples): raw scores, min_score 0.5", len(train))
        return None
    ev, y = out_of_fold_evidence(train, make, feat, splits)
    method = make().calibration_method
    calibration = fit_calibration(ev, y, method)
    log.info("calibration (%s, %d validation predictions): ECE %.3f, default min_score %.2f, novelty threshold %s",
             method, len(y), calibration.ece, calibration.min_score, calibration.novelty_threshold)
    return calibration


def _concat(a: PatchSet, b: PatchSet) -> PatchSet:
    groups = None if a.groups is None or b.groups is None else np.concatenate([a.groups, b.groups])
    return PatchSet(np.concatenate([a.images, b.images]), np.concatenate([a.labels, b.labels]), a.class_names, groups)
