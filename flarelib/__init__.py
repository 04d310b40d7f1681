"""flarelib: the library behind flare-study (FLARE24 Task 3: CT-labelled, MR-unlabelled segmentation).

Arrays are (z, y, x); spacings say their order in the name (``spacing_zyx``) and are in mm.
Labels are uint8 with FLARE24 ids (see :mod:`flarelib.labels`).
"""

__version__ = "0.1.0"
