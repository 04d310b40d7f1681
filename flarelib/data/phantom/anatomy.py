"""Phantom anatomy: the body and the 13 FLARE organs as implicit shapes in world millimetres.

Frames and units
----------------
Everything here lives in the *anatomical frame* of one patient: millimetres, LPS axes (``+x`` to the
patient's left, ``+y`` posterior, ``+z`` superior), origin on the midline at the level of the
kidney hila (about L1/L2), ``y = 0`` roughly in the middle of the abdominal cavity. A scanner places
the patient somewhere else and the patient moves between acquisitions; :mod:`.generate` maps each
output voxel back into this frame (inverse rigid motion, then the patient's smooth deformation)
and hands the resulting coordinate arrays to :func:`evaluate`.

Every structure is an implicit function: deformed ellipsoids (:class:`Ellipsoid`) and swept tubes
(distance to a smooth polyline below an interpolated radius, :class:`Tube`), evaluated only inside
the structure's bounding box in index space (:class:`Sampler`). Labels and tissues are assigned by
priority: later structures overwrite earlier ones. Two maps come out:

* ``label``: uint8 FLARE ids 0..13 (:data:`flarelib.labels.ORGANS`),
* ``tissue``: uint8 :class:`Tissue` ids, which the renderer (:mod:`.render`) turns into intensities.
  A tissue is finer than a label (kidney cortex / medulla / pelvis; stomach wall / fluid / gas;
  unlabelled distractors such as the portal vein, bowel loops, fat and muscle).

Per-patient variation (:func:`make_patient`): body size and fat thickness, per-organ size, position
and orientation, kidney heights (right lower than left), liver fat fraction, stomach gas and
filling, bowel loop layout, and a smooth low-frequency displacement field. Breathing moves each
structure along z by ``factor * breath_mm`` (factor 1 for the liver, spleen and diaphragm, less
for the kidneys, none for the body wall and spine).

Arrays are (z, y, x); every random draw comes from the ``numpy.random.Generator`` passed in.

Where things live (this module re-exports their public names):

* :mod:`.shapes`: :class:`Tissue`, :data:`FAT_TISSUES`, :func:`rotation`, :class:`Ellipsoid`, :class:`Tube`;
* :mod:`.sampler`: :class:`Sampler`, :func:`make_sampler`, :data:`BREATH_FACTORS`;
* :mod:`.priors`: the patient priors as data (:data:`PRIORS`, :data:`CENTRELINES`);
* :mod:`.patient`: :class:`Patient`, :func:`make_patient`;
* :mod:`.painter`: :func:`evaluate` (body profiles, canvas, organ painting).
"""

from flarelib.data.phantom.painter import evaluate
from flarelib.data.phantom.patient import Patient, make_patient
from flarelib.data.phantom.priors import CENTRELINES, PRIORS
from flarelib.data.phantom.sampler import BREATH_FACTORS, Sampler, make_sampler
from flarelib.data.phantom.shapes import FAT_TISSUES, Ellipsoid, Tissue, Tube, rotation

__all__ = [
    "BREATH_FACTORS",
    "CENTRELINES",
    "FAT_TISSUES",
    "PRIORS",
    "Ellipsoid",
    "Patient",
    "Sampler",
    "Tissue",
    "Tube",
    "evaluate",
    "make_patient",
    "make_sampler",
    "rotation",
]
