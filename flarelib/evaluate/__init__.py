"""Evaluation: FLARE24-exact DSC/NSD (public names in :mod:`flarelib.evaluate.metrics`; the code in
``surfels`` -> ``surface`` -> ``scoring`` -> ``report``), per-case scoring of a stage (``cases``) and
efficiency measurements (``efficiency``)."""
