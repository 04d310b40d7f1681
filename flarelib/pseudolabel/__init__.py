"""Stage 2 and 3 pseudo-label decision makers (STUDY.md "Stage 2", "Stage 3").

* :mod:`.transfer`: T1W -> multi-sequence label transfer (body-mask / intensity registration) and
  the kidney-DSC filter (paper section 2.4, Fig. 4).
* :mod:`.anatomy`: the anatomy-aware module, constraints (6)-(8) (paper section 2.5, Fig. 5), and an
  injector of anatomical violations (for measuring it).
* :mod:`.pairs`: turns their results into ``(image, label, annotated)`` training cases.
* :mod:`.diagnostics`: their accuracy on the phantom, against its hidden true labels
  (``flarelib pseudolabel-diagnostics``).

Submodules are imported on demand (``from flarelib.pseudolabel import transfer``).
"""
