"""Calibration measures: reliability bins, ECE and accuracy/coverage, checked on hand-made scores."""
import numpy as np
import pytest

from robot_classify.evaluation.calibration import coverage_curve, expected_calibration_error, reliability_bins


def test_reliability_bins_put_scores_in_right_closed_bins():
    b = reliability_bins([0.0, 0.05, 0.1, 0.15, 1.0], [1, 0, 1, 1, 1], n_bins=10)
    assert b["count"].tolist() == [3, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    assert b["confidence"][0] == pytest.approx(0.05)
    assert b["accuracy"][0] == pytest.approx(2 / 3)
    assert np.isnan(b["accuracy"][2])
    assert b["edges"][[0, -1]].tolist() == [0.0, 1.0]


def test_ece_is_zero_when_confidence_matches_accuracy_and_weights_bins_by_count():
    # 10 predictions at 0.8 with 8 right: perfectly calibrated.
    assert expected_calibration_error([0.8] * 10, [1] * 8 + [0] * 2) == pytest.approx(0.0)
    # 4 at 0.95 all right (gap 0.05), 6 at 0.55 with 0 right (gap 0.55): (4*0.05 + 6*0.55) / 10.
    ece = expected_calibration_error([0.95] * 4 + [0.55] * 6, [1] * 4 + [0] * 6)
    assert ece == pytest.approx((4 * 0.05 + 6 * 0.55) / 10)
    assert np.isnan(expected_calibration_error([], []))


def test_coverage_curve_keeps_scores_at_or_above_the_threshold():
    scores = [0.2, 0.4, 0.6, 0.8]
    correct = [0, 1, 1, 1]
    c = coverage_curve(scores, correct, [0.0, 0.4, 0.5, 0.9])
    assert c["count"].tolist() == [4, 3, 2, 0]
    assert c["coverage"].tolist() == [1.0, 0.75, 0.5, 0.0]
    assert c["accuracy"][:3].tolist() == [0.75, 1.0, 1.0]
    assert np.isnan(c["accuracy"][3])


def test_calibration_inputs_are_checked():
    with pytest.raises(ValueError, match="same length"):
        expected_calibration_error([0.5, 0.6], [1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability_bins([1.5], [1])
    with pytest.raises(ValueError, match="n_bins"):
        reliability_bins([0.5], [1], n_bins=0)


# ----------------------------------------------------------------- calibration stored in models
from robot_classify.learn.calibration import Calibration, Evidence, choose_min_score, fit_calibration  # noqa: E402


def test_temperature_scaling_undoes_overconfident_logits():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, (4000, 4))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(4, p=row) for row in p])  # labels drawn from softmax(z): z is calibrated
    logits = 4.0 * z  # a model 4x too sure of itself
    ev = Evidence(logits.argmax(1), None, logits)
    raw = expected_calibration_error(np.exp(logits.max(1)) / np.exp(logits).sum(1), logits.argmax(1) == y)
    cal = fit_calibration(ev, y, "temperature")
    assert cal.params["temperature"] == pytest.approx(4.0, rel=0.15)
    assert raw > 0.1 and cal.ece < 0.03


def test_a_class_missing_from_a_fold_does_not_flatten_the_temperature(caplog):
    """Found from outside: crops of a class their fold never trained on (logit -1e9, as
    `out_of_fold_evidence` writes it) pushed the temperature to its bound, every score to 1/classes."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, (4000, 4))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(4, p=row) for row in p])
    logits = 4.0 * z
    logits[:5, 3], y[:5] = -1e9, 3  # five crops of a class this fold lacked
    cal = fit_calibration(Evidence(logits.argmax(1), None, logits), y, "temperature")
    assert cal.params["temperature"] == pytest.approx(4.0, rel=0.15)


def test_knn_score_falls_with_distance_at_equal_vote_share():
    rng = np.random.default_rng(1)
    n = 3000
    d = rng.uniform(0.5, 4.0, n)
    correct = rng.random(n) < np.clip(1.2 - 0.3 * d, 0.05, 0.95)  # far queries are often wrong
    y = np.where(correct, 0, 1)
    proba = np.tile([1.0, 0.0], (n, 1))  # every vote unanimous: shares alone say nothing
    ev = Evidence(np.zeros(n, np.int64), proba, None, d, d)
    cal = fit_calibration(ev, y, "knn_logistic")
    near = Evidence(np.zeros(2, np.int64), np.tile([1.0, 0.0], (2, 1)), None, np.array([0.6, 3.5]),
                         np.array([0.6, 3.5]))
    scores, novelty = cal.apply(near)
    assert scores[0, 0] > 0.8 and scores[1, 0] < 0.3
    assert novelty[1] > novelty[0]
    assert cal.ece < 0.05
    assert cal.novelty_threshold is not None and 0.5 / cal.params["distance_scale"] < cal.novelty_threshold


def test_default_min_score_keeps_answers_that_are_more_often_right_than_wrong():
    score = np.array([0.2, 0.3, 0.45, 0.6, 0.7, 0.9, 0.95])
    correct = np.array([0, 0, 0, 1, 1, 1, 1], bool)
    assert choose_min_score(score, correct) == pytest.approx(0.5)
    assert choose_min_score(score, np.ones(7, bool)) == 0.0  # nothing to reject


def test_default_min_score_never_rejects_every_validation_answer():
    """Found from outside: a 1-NN whose distances said nothing scored all 400 answers 0.443 (its CV
    accuracy), and the default min_score 0.45 made the model call everything `unknown`."""
    score, correct = np.full(400, 0.443), np.arange(400) < 177
    assert choose_min_score(score, correct) <= 0.443
    assert choose_min_score(np.array([0.1, 0.2]), np.array([False, False])) <= 0.2


def test_calibration_json_is_checked_field_by_field():
    good = Calibration("temperature", {"temperature": 2.0}, 0.5, -3.0, 0.02, 100)
    assert Calibration.from_json(good.to_json()) == good
    for bad, message in [({"params": {"temperature": -1.0}}, "must be > 0"),
                         ({"params": {"bias": 1.0}}, "must be exactly"),
                         ({"min_score": 1.5}, "min_score"),
                         ({"method": "isotonic"}, "method must be one of"),
                         ({"ece": float("nan")}, "ece")]:
        with pytest.raises(ValueError, match=message):
            Calibration.from_json({**good.to_json(), **bad})
    with pytest.raises(ValueError, match="exactly the fields"):
        Calibration.from_json({**good.to_json(), "extra": 1})


def test_a_model_that_names_nothing_or_guesses_is_warned_about(caplog):
    """Found from outside: "validation ECE 0.000" for a model that called every crop a negative label."""
    from robot_classify.learn.calibration import MAX_LOG_TEMPERATURE
    from robot_classify.learn.training import _warn_if_unfit

    ev = Evidence(np.full(6, 2), None, np.zeros((6, 3)))
    y = np.array([0, 1, 2, 2, 0, 1])
    with caplog.at_level("WARNING"):
        _warn_if_unfit(ev, y, Calibration("temperature", {"temperature": 1.0}, 0.5, None, 0.0, 6), np.array([2]))
    assert "no validation crop was won by a class (a negative label won all 6)" in caplog.text
    caplog.clear()
    flat = Calibration("temperature", {"temperature": float(np.exp(MAX_LOG_TEMPERATURE))}, 0.5, None, 0.0, 6)
    with caplog.at_level("WARNING"):
        _warn_if_unfit(Evidence(np.zeros(6, np.int64), None, np.zeros((6, 3))), y, flat, np.array([], np.int64))
    assert "the scores carry no confidence" in caplog.text
