"""Calibration measures for reports (reliability diagram, ECE, accuracy/coverage vs threshold).

The functions live in `learn.calibration`, because training stores the calibration it measures
and `learn` may not import `evaluation`; re-exported here so reports and training agree.
"""
from __future__ import annotations

from ..learn.calibration import (CoverageCurve, ReliabilityBins, coverage_curve, expected_calibration_error,
                                 reliability_bins)

__all__ = ["CoverageCurve", "ReliabilityBins", "coverage_curve", "expected_calibration_error", "reliability_bins"]
