"""Classification metrics as plain dicts/arrays, so they go straight into metrics.json."""
from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def per_class_report(cm: np.ndarray, labels: list[str]) -> dict[str, dict[str, float]]:
    """precision / recall / f1 / support per label from a confusion matrix (0 where undefined, as
    scikit-learn's zero_division=0; `predicted` and `support` tell a 0 from an undefined one)."""
    tp = np.diag(cm).astype(float)
    pred = cm.sum(0).astype(float)
    true = cm.sum(1).astype(float)
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = np.divide(tp, true, out=np.zeros_like(tp), where=true > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(true[i]), "predicted": int(pred[i])} for i, name in enumerate(labels)}


def defined_rates(v: dict[str, Any]) -> dict[str, float | None]:
    """A class's precision, recall and F1, None where undefined (precision: a class never
    predicted; recall: never in the ground truth; F1: neither), not the 0.0 a metrics file keeps
    there. A class predicted but never right, or present but never found, has an F1 of 0."""
    predicted = v.get("predicted", 1)
    p = None if predicted == 0 else float(v["precision"])
    r = None if v["support"] == 0 else float(v["recall"])
    return {"precision": p, "recall": r, "f1": None if predicted == 0 and v["support"] == 0 else float(v["f1"])}


def shown_rates(v: dict[str, Any]) -> list[str]:
    """`defined_rates` as shown to a person: n/a where undefined."""
    return ["n/a" if x is None else f"{x:.3f}" for x in defined_rates(v).values()]


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    cm = confusion_matrix(y_true, y_pred, len(class_names))
    return {"accuracy": float(np.trace(cm) / max(cm.sum(), 1)), "n": int(cm.sum()), "class_names": list(class_names),
            "per_class": per_class_report(cm, class_names),
            "confusion": {"labels": list(class_names), "matrix": cm.tolist()}}
