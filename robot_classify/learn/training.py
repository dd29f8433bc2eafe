"""Train a `ClassifierModel` from a training split, tuning hyperparameters first if asked."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
import numpy as np

from .patch_set import PatchSet, split_validation
from .distances import compute_distances
from .features import FeaturePipeline, feature_config, with_mirror_images
from .knn import KNNClassifier
from .linear import LinearClassifier
from .model import ClassifierModel, negative_indices
from .model_io import data_sha256
from .calibration import MAX_LOG_TEMPERATURE, Calibration, fit_calibration
from .tuning import TuneResult, fold_indices, out_of_fold_evidence, tune_knn, tune_linear

log = logging.getLogger(__name__)

DEFAULT_KS = [1, 3, 5, 7, 9, 11, 15]
# Log grids, wide enough that the choice is rarely at an edge (a warning says when it is). The
# linear model standardises its features (unit norm on average), so one grid fits every feature
# kind. L-BFGS (small data) needs no learning rate: only the SGD solver searches DEFAULT_LRS.
DEFAULT_REGS = [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2]
DEFAULT_LRS = [0.1, 1.0, 10.0]
TUNE_STRATEGIES = ("cv", "val", "none")
MIRRORS = ("auto", "on", "off")
MIRROR_BELOW = 5000  # mirror "auto": training sets smaller than this also learn mirror images


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
    # also learn each patch mirrored left-right: "auto" (below MIRROR_BELOW patches, when
    # `mirror_keeps_class`; `robot-classify train`'s default), "on", "off" (the library's default)
    mirror: str = "off"
    device: str = "auto"
    seed: int = 0
    quiet: bool = False
    name: str = "model"

    def __post_init__(self) -> None:
        if self.classifier not in ("knn", "linear"):
            raise ValueError(f"classifier must be knn or linear, got {self.classifier!r}")
        if self.tune not in TUNE_STRATEGIES:
            raise ValueError(f"tune must be one of {TUNE_STRATEGIES}, got {self.tune!r}")
        if self.mirror not in MIRRORS:
            raise ValueError(f"mirror must be one of {MIRRORS}, got {self.mirror!r}")
        if self.k != "auto" and (not str(self.k).isdigit() or int(self.k) < 1):
            raise ValueError(f"k must be 'auto' or a positive integer, got {self.k!r}")


def train_model(train: PatchSet, opts: TrainOptions, val: PatchSet | None = None) -> ClassifierModel:
    """Tune on `val` (or k-fold CV inside `train`), then fit the chosen setting on all of it."""
    if not len(train):
        raise ValueError("the training split is empty")
    if opts.classifier == "knn" and opts.k != "auto" and int(opts.k) > len(train):
        # A user's k is never capped silently: the node would reject the same k for this model.
        raise ValueError(f"k={int(opts.k)} is larger than the training set ({len(train)} patches)")
    if opts.tune == "cv" and opts.folds > len(train):  # a fold would be empty (sklearn's error said only that)
        raise ValueError(f"--folds {opts.folds} is more than the {len(train)} training patches; use at most "
                         f"{len(train)}")
    if opts.tune == "val" and val is None:
        train, val = split_validation(train, opts.val_fraction, opts.seed)
    originals = len(train)  # mirror images come after them (`mirrored`)
    if opts.mirror == "on" or (opts.mirror == "auto" and len(train) < MIRROR_BELOW
                               and mirror_keeps_class(train, opts.features[0])):
        train = mirrored(train)
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
        model.calibration = _calibrate(train, val if opts.tune == "val" else None, make, feat, opts, originals)
    model.meta = {"name": opts.name,
                  "training": {"sha256": data_sha256(final.images, final.labels), "n_samples": len(final)},
                  "tuning": result.to_json() if result else {}}
    return model


def _calibrate(train: PatchSet, val: PatchSet | None, make, feat: dict, opts: TrainOptions,
               originals: int | None = None) -> Calibration | None:
    """Calibration and open-set threshold from predictions on data the fitted setting did not see:
    the validation split, else the CV folds of the training data (grouped by scene when it can).
    Only the first `originals` patches are validated on: mirror images train, but the node
    never sees one, so its scores are calibrated on real crops."""
    originals = len(train) if originals is None else originals
    classes = len(np.unique(train.labels))
    if val is not None and len(val):
        splits = [(train, val)]
    elif len(train) >= 2 * opts.folds and classes > 1:
        splits = [(train.subset(tr), train.subset(va[va < originals]))
                  for tr, va in fold_indices(train, opts.folds, opts.seed)]
    elif classes < 2:
        log.warning("one class only: no other class to calibrate its scores against: raw scores, min_score 0.5")
        return None
    else:
        log.warning("too little data to calibrate (%d samples): raw scores, min_score 0.5", len(train))
        return None
    ev, y = out_of_fold_evidence(train, make, feat, splits)
    method = make().calibration_method
    negative = negative_indices(train.class_names)
    calibration = fit_calibration(ev, y, method, negative)
    log.info("calibration (%s, %d validation predictions): ECE %.3f, default min_score %.2f, novelty threshold %s",
             method, len(y), calibration.ece, calibration.min_score, calibration.novelty_threshold)
    _warn_if_unfit(ev, y, calibration, negative)
    return calibration


SCORES_APART = 0.02  # 90% of the validation scores within this of each other: no confidence in them


def _warn_if_unfit(ev, y: np.ndarray, calibration: Calibration, negative: np.ndarray) -> None:
    """A model that learned nothing had looked calibrated (found from outside): a linear model on
    117 real crops got a temperature at its bound, so every score about 1/11, and one that called
    every validation crop a negative label reported "ECE 0.000", an ECE of no answers."""
    won = int((~np.isin(ev.labels, negative)).sum()) if len(negative) else len(y)
    right = float((ev.labels == y).mean()) if len(y) else 0.0
    if won == 0:
        log.warning("no validation crop was won by a class (a negative label won all %d): the model "
                    "will call everything unknown, and its ECE measures no answer", len(y))
    elif calibration.params.get("temperature", 0.0) >= 0.99 * np.exp(MAX_LOG_TEMPERATURE):
        log.warning("validation accuracy %.1f%%, and the fitted temperature is at its bound: every score is about "
                    "1/%d, so the scores carry no confidence. More or cleaner data, other features or a kNN may do",
                    100 * right, ev.logits.shape[1])
    else:
        score = calibration.winner_scores(ev)[0]
        if len(score) > 1 and float(np.subtract(*np.percentile(score, [95, 5]))) < SCORES_APART:
            log.warning("validation accuracy %.1f%%, and 90%% of the validation scores lie within %.2f of %.2f: the "
                        "scores do not tell right answers from wrong ones (ECE %.3f only says their mean is right). A larger k, less "
                        "regularisation, other features or more data may do",
                        100 * right, SCORES_APART, float(np.median(score)), calibration.ece)


def mirror_keeps_class(data: PatchSet, features: str, margin: float = 0.05) -> bool:
    """Whether mirror images look like their class in this data: a 1-NN on the original patches
    labels the mirror images (each without its own original) within `margin` of how well it
    labels the originals left out one at a time. Measured: tabletop objects from a bag 0.846 vs
    0.846 (mirror); scikit-learn's digits 0.989 vs 0.342 (a mirrored 3 is no 3: no mirror)."""
    pipe = FeaturePipeline(**feature_config(features, "knn", "l2"))
    X = pipe.fit_transform(data.images).astype(np.float32)
    M = pipe.transform(np.ascontiguousarray(data.images[:, :, ::-1])).astype(np.float32)
    y, hits = data.labels, np.zeros(2)
    for s in range(0, len(X), 512):  # blocks: a 5,000 x 5,000 matrix at once is 200 MB
        rows = np.arange(s, min(s + 512, len(X)))
        for i, Q in enumerate((X[rows], M[rows])):
            D = compute_distances(Q, X, "l2")
            D[np.arange(len(rows)), rows] = np.inf  # never its own original
            hits[i] += (y[D.argmin(1)] == y[rows]).sum()
    keeps = bool(hits[1] >= hits[0] - margin * len(X))
    log.info("mirror images: 1-NN accuracy %.3f (originals left out: %.3f): %s", hits[1] / len(X), hits[0] / len(X),
             "learned" if keeps else "not learned")
    return keeps


def mirrored(data: PatchSet) -> PatchSet:
    """`data` plus each patch mirrored left-right, in its original's CV group (one group per
    original when `data` has none), so that no fold validates on a mirror of its own training
    data. Objects turn on a table: a mirror image is a plausible view, and on a few hundred
    bag crops it was worth 7 points of held-out accuracy (doc/accuracy.md, "Linear, calibration and
    'unknown'"). Not for data whose classes change under mirroring (digits): `mirror_keeps_class`."""
    images, groups = with_mirror_images(data.images, np.arange(len(data)) if data.groups is None else data.groups)
    return PatchSet(images, np.concatenate([data.labels, data.labels]), data.class_names, groups)


def _concat(a: PatchSet, b: PatchSet) -> PatchSet:
    groups = None if a.groups is None or b.groups is None else np.concatenate([a.groups, b.groups])
    return PatchSet(np.concatenate([a.images, b.images]), np.concatenate([a.labels, b.labels]), a.class_names, groups)
