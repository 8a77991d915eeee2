"""Evaluation: the metrics of a suite (evaluate), the robustness probes (probes), the non-member level
of a line (calibration), generation and fake quantisation they use. The metric functions themselves
are in grin_core.metrics."""
