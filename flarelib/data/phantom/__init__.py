"""The procedural multi-sequence abdominal phantom (the embedded default data track).

* :mod:`.anatomy`: the body and the 13 organs as implicit shapes in world mm (LPS), per-patient
  variation (:mod:`.shapes`, :mod:`.sampler`, :mod:`.priors`, :mod:`.patient`, :mod:`.painter`).
* :mod:`.render`: CT in HU and the 8 MR sequence contrasts, bias field, noise, partial-volume blur.
* :mod:`.generate`: subsets, geometry between sequences, z-flips, misalignment, diagnostics, writing,
  and the ``flarelib generate`` command (:func:`add_cli`) (:mod:`.subsets`, :mod:`.geometry`,
  :mod:`.label_errors`, :mod:`.volume`, :mod:`.cases`, :mod:`.build`).
* :mod:`.truth`: the diagnostics folder (true labels, tissue maps, ``truth.json``), which the method
  never reads: :func:`load_truth`, :func:`truth_case`, :func:`truth_label_path`, :func:`read_truth_label`,
  :func:`translation_truth_file` (labelled CT rendered as MR: the truth of a CT -> MR translation).
* :mod:`.marker`: the "phantom complete" marker that :func:`flarelib.datasets.ensure_data` checks.

``generate(params, out_dir)`` writes the layout of ``params.data.subsets`` (``params/data/phantom.yaml``)
plus ``diagnostics/`` (true labels, tissue maps and transforms, which the method never reads).
"""

from flarelib.data.phantom.generate import GenerateReport, add_cli, generate
from flarelib.data.phantom.truth import (
    load_truth,
    read_truth_label,
    translation_truth_file,
    truth_case,
    truth_label_path,
)

__all__ = [
    "GenerateReport",
    "add_cli",
    "generate",
    "load_truth",
    "read_truth_label",
    "translation_truth_file",
    "truth_case",
    "truth_label_path",
]
