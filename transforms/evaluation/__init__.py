"""Scoring a search: binary-classification metrics, detection efficiency at a fixed false-alarm probability,
and the figures that compare searches. numpy and matplotlib only (no TensorFlow, no Beam), so the trainer's
evaluation (``model/``) and the matched-filter baseline (``beam_pipelines/recipes/g2net/baseline.py``) share it.
"""
