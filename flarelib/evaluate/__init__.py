"""Evaluation: FLARE24-exact DSC/NSD (:mod:`flarelib.evaluate.metrics`)."""
