"""The procedural multi-sequence abdominal phantom (the embedded default data track).

* :mod:`.anatomy`: the body and the 13 organs as implicit shapes in world mm (LPS), per-patient variation.
* :mod:`.render`: CT in HU and the 8 MR sequence contrasts, bias field, noise, partial-volume blur.
* :mod:`.generate`: subsets, geometry between sequences, z-flips, misalignment, diagnostics, writing,
  and the ``flarelib generate`` command (:func:`add_cli`).

``generate(params, out_dir)`` writes the FLARE24-style layout of ``params/data/phantom.yaml`` plus
``diagnostics/`` (true labels, tissue maps and transforms, which the method never reads).
"""

from flarelib.data.phantom.generate import GenerateReport, add_cli, generate, load_truth

__all__ = ["GenerateReport", "add_cli", "generate", "load_truth"]
