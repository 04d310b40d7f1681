"""Translation and rigid registration (SimpleITK), transform application, composition, JSON I/O.

Modules: :mod:`.methods` (``register_rigid``, ``register_translation``), :mod:`.result`
(:class:`RegistrationResult`), :mod:`.transforms` (composition, application, JSON).

Transform convention (SimpleITK's): a registration of ``moving`` onto ``fixed`` returns a transform
``T`` that maps a FIXED-space world point (LPS mm) to the MOVING-space point that corresponds to it.
Resampling ``moving`` through ``T`` onto ``fixed``'s grid (:func:`apply_transform`) therefore
brings it into the fixed space. For an ``Euler3DTransform`` ``T(p) = R (p - c) + c + t`` with centre
``c`` (a fixed parameter), rotation ``R`` (angles about x, y, z in radians) and translation ``t``.

Reproducibility: metric sampling is random with a fixed seed
(``SetMetricSamplingPercentage(fraction, seed)``), and the registration runs single-threaded by
default (``threads=1``): with several threads the per-thread sums are combined in a
platform-dependent way and the last digits can differ between machines.

Measured on this kind of machine (DESIGN.md): Euler3D + MeanSquares on 20 % samples, 3 levels,
about 10 s for 60x200x200 masks; use ``SetOptimizerScalesFromPhysicalShift`` (hand-set scales
diverged).
"""

from flarelib.registration.methods import register_rigid, register_translation
from flarelib.registration.result import RegistrationResult
from flarelib.registration.transforms import (
    _matrix_offset,
    apply_transform,
    compose,
    rotation_angle_deg,
    transform_from_dict,
    transform_to_dict,
)

__all__ = [
    "RegistrationResult",
    "_matrix_offset",
    "apply_transform",
    "compose",
    "register_rigid",
    "register_translation",
    "rotation_angle_deg",
    "transform_from_dict",
    "transform_to_dict",
]
