"""Measuring: metrics, box matching, patch-extraction and bag replay evaluation, plots and
the HTML report."""
