"""Inference: sliding-window prediction (:mod:`~flarelib.infer.sliding`), anatomy post-processing
(:mod:`~flarelib.infer.postprocess`) and the per-case pipeline behind ``flarelib predict``
(:mod:`~flarelib.infer.pipeline`)."""
