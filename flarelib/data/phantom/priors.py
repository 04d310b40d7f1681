"""The patient priors: nominal anatomy and the ranges of every per-patient draw, as data.

:func:`.patient.make_patient` reads these two tables; changing a value changes the phantom.

* :data:`PRIORS` ``{structure: {name: value}}``: uniform ranges ``(lo, hi)`` of the draws, Gaussian
  jitters ``(sd, clip)`` (mm, per axis, clipped to ``[-clip, clip]``), nominal centres and semi-axes.
  Points and vectors are (x, y, z) in the anatomical frame (mm, LPS: ``+x`` patient's left, ``+y``
  posterior, ``+z`` superior; origin on the midline at the kidney hila); angles in degrees about the
  x, y, z axes (``None``: no rotation about that axis); ``scale`` entries are unitless factors of
  the semi-axes (x, y, z) or radii.
* :data:`CENTRELINES` ``{tube: (points, radii)}``: nominal centre lines (x, y, z mm) and radii (mm)
  of the tubular structures, before the per-patient shifts.

Right-left mirrored structures (kidneys, adrenals) store magnitudes; the code applies the side.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CENTRELINES", "PRIORS"]

PRIORS: dict[str, dict[str, Any]] = {
    "body": {
        "scale": ((0.95, 1.06), (0.94, 1.07), (0.96, 1.04)),  # global scale of the anatomy (x, y, z)
        "fat_mm": (8, 32),  # anterior subcutaneous fat thickness
        "muscle_mm": (10, 15),  # lateral abdominal wall muscle thickness
        "outline": (0.03, 0.015, 0.025, 0.02),  # amplitudes of cos 2t, sin 2t, cos 3t, sin 3t (outline)
        "wall": (0.25, 0.2, 0.12, 0.08),  # amplitudes of fat (cos 2t, sin 2t), muscle (sin t, cos t)
        "table_sink_mm": (3, 8),  # the back rests this much below its nominal contact with the table
        "dome_right_z_mm": (146, 158),  # right hemidiaphragm dome height
        "dome_left_z_mm": (132, 144),
    },
    "liver": {  # shared by the three parts
        "scale": ((0.93, 1.07), (0.93, 1.07), (0.92, 1.08)),
        "jitter_mm": (4, 8),
        "inferior_z_mm": (-40, -24),  # inferior cut plane z = a + b * (x + 90): a
        "inferior_slope": (0.34, 0.48),  # b
    },
    "liver_right": {
        "center_mm": (-60.0, 6, 90),
        "semi_mm": (74.0, 80, 78),
        "rot_deg": ((-6, 6), (-6, 6), (-14, -4)),
        "taper": ((0, 0, 0.0), (0, 0, 0), (-0.18, 0, 0)),
    },
    "liver_left": {
        "center_mm": (12.0, -38, 104),
        "jitter_mm": (5, 9),
        "semi_mm": (70.0, 38, 34),
        "scale_x": (0.85, 1.15),
        "rot_deg": (None, (-12, -4), (-8, 8)),
        "taper": ((0, 0, 0), (-0.3, 0, 0), (-0.35, 0, 0)),
    },
    "liver_tip": {  # the right inferior tip
        "center_mm": (-84.0, 6, 18),
        "jitter_mm": (4, 8),
        "semi_mm": (38.0, 52, 52),
        "scale": (0.85, 1.1),  # one factor for all axes
        "rot_deg": (None, (5, 20), None),
    },
    "spleen": {
        "scale": ((0.9, 1.15), (0.9, 1.12), (0.88, 1.18)),
        "center_mm": (90.0, 44, 76),
        "jitter_mm": (5, 9),
        "rot_deg": ((25, 45), (-10, 10), (-35, -15)),
        "semi_mm": (25.0, 44, 64),
    },
    "spleen_hilum": {  # carved out of the spleen, medially along its local -x axis
        "depth_mm": 44,  # times the spleen's x scale
        "offset_mm": (0, -8, 0),
        "semi_mm": (26.0, 22, 34),  # times the spleen's scale
    },
    "kidney": {  # right kidney: x mirrored, y and z rotations mirrored
        "drop_right_mm": (12, 26),  # the right kidney sits 1-2.5 cm lower than the left
        "left_z_mm": (-6, 8),
        "scale": ((0.92, 1.08), (0.92, 1.08), (0.92, 1.08)),
        "lateral_mm": (64, 74),  # |x| of the centre
        "y_mm": (42, 50),
        "rot_deg": ((-18, -8), (8, 16), (20, 35)),  # y angle = -side * draw, z angle = side * draw
        "semi_mm": (25.0, 30, 56),
    },
    "adrenal": {  # on top of the kidney of its side; z rotation mirrored
        "base_mm": {-1: (-34.0, 30, 0), 1: (33.0, 26, 0)},  # (x, y) of each side; z from the kidney
        "top_fraction": (0.75, 0.95),  # kidney top = centre + fraction * z semi-axis
        "gap_mm": (6, 14),  # above that top
        "jitter_mm": (2, 4),
        "jitter_weight": (1, 1, 0.5),
        "semi_mm": (5.4, 13.0, 17.0),
        "scale": ((0.9, 1.12), (0.9, 1.12), (0.9, 1.12)),
        "rot_deg": ((-15, 15), None, (20, 40)),
    },
    "gallbladder": {
        "axis": (0.15, -0.45, -0.88),  # long axis, fundus down and anterior
        "axis_sd": 0.08,
        "scale": (0.8, 1.18),  # size
        "center_mm": (-58.0, -50, 30),
        "jitter_mm": (4, 7),
        "semi_mm": (14.0, 14.0, 37.0),
        "width_scale": (0.9, 1.1),  # x and y, each
        "taper": ((0, 0, 0.22), (0, 0, 0.22), (0, 0, 0)),
    },
    "pancreas_complex": {"jitter_mm": (3, 6)},  # one shift of the pancreas, duodenum and portal system
    "pancreas": {"radius_scale": (0.9, 1.1)},
    "stomach": {
        "point_jitter_mm": (3, 6),
        "free": (1, 1, 1, 1, 0.5, 0),  # per point: own jitter vs. the pancreas-complex shift
        "radius_scale": (0.85, 1.1),  # fundus and body (the first 4 points), one factor
    },
    "colon": {"point_sd_mm": 4},
    "bowel": {
        "loops": (5, 8),  # integers, hi excluded
        "jejunum_loops": 2,  # the first loops lie in the left upper / mid abdomen
        "jejunum_box_mm": ((15, -75, -55), (80, -20, 5)),
        "jejunum_walk": (10, 16),  # points, step mm
        "ileum_box_mm": ((-60, -85, -200), (65, -10, -40)),
        "ileum_walk": (12, 18),
        "radius_mm": (9, 12.5),
        "content": (0, 1, 1, 2),  # drawn per loop: 0 collapsed, 1 fluid, 2 fluid + gas
    },
    "heart": {
        "center_xy_mm": (16.0, -34),
        "above_domes_mm": 40,  # centre z = mean dome height + this
        "jitter_mm": (4, 8),
        "semi_mm": (62.0, 48.0, 56.0),
        "scale_x": (0.9, 1.1),
        "rot_deg": (None, (-25, -15), (10, 30)),
    },
    "bladder": {"center_mm": (0.0, -40, -250), "semi_mm": (45.0, 35, 32), "scale_xz": (0.7, 1.1)},
    "deformation": {"modes": 5, "wavelength_mm": (160, 320), "amplitude_mm": (1.0, 3.0)},
    "gas": {"stomach": (0.35, 0.95), "colon": (0.2, 0.7)},  # fraction of the lumen radius, anterior
    # three draws, one picked at random: two in three patients lean, one in three fatty
    "liver_fat_fraction": ((0.01, 0.05), (0.01, 0.05), (0.1, 0.25)),
}

CENTRELINES: dict[str, tuple[tuple, tuple]] = {
    "pancreas": (  # head to tail; shifted with the pancreas complex
        ((-38, -13, -28), (-28, -15, -12), (-4, -23, -4), (28, -15, 6), (58, 4, 20), (80, 22, 36)),
        (16, 14, 10, 12, 11, 9),
    ),
    "duodenum": (  # bulb, descending, horizontal, ascending parts; shifted with the pancreas complex
        (
            (-18, -48, 18),
            (-38, -30, 15),
            (-57, -14, 4),
            (-61, -8, -32),
            (-48, -10, -59),
            (-14, -24, -66),
            (18, -24, -62),
            (30, -18, -38),
            (26, -28, -22),
        ),
        (12, 14, 12, 12, 12, 11.5, 11.5, 11, 11),
    ),
    "stomach": (  # fundus to pylorus
        ((46, 18, 124), (54, -4, 102), (52, -34, 70), (34, -52, 40), (8, -56, 24), (-18, -48, 18)),
        (30, 33, 29, 23, 16, 11),
    ),
    "esophagus": (((4, 28, 320), (6, 24, 230), (12, 8, 160), (28, 4, 130), (42, 14, 121)), (8, 8, 8, 9, 10)),
    "aorta": (
        (
            (-2, -32, 262),
            (0, -32, 320),
            (12, -8, 350),
            (24, 20, 318),
            (30, 22, 250),
            (18, 16, 160),
            (14, 6, 110),
            (14, 2, 40),
            (14, 2, -40),
            (16, 4, -118),
        ),
        (14.5, 15, 14, 13, 12.5, 12, 11.5, 11, 10.5, 10),
    ),
    "ivc": (
        ((-24, 8, -122), (-24, 4, -40), (-26, 0, 40), (-28, 10, 100), (-20, 12, 140), (-14, 8, 178)),
        (10.5, 11, 11.5, 12, 13, 13),
    ),
    # portal system, shifted with the pancreas complex
    "portal_vein": (
        ((-6, -13, -4), (-22, -11, 18), (-38, -5, 42), (-62, 4, 58), (-92, 8, 72)),
        (7, 7.5, 7, 5.5, 3.5),
    ),
    "left_portal_vein": (((-38, -5, 42), (-14, -20, 66), (12, -36, 84)), (5, 4.5, 3)),
    "superior_mesenteric_vein": (((-2, -25, -92), (-6, -18, -30), (-6, -13, -4)), (5.5, 6, 7)),
    "splenic_vein": (((-6, -13, -4), (24, -2, 6), (56, 18, 22), (84, 36, 42)), (5, 5, 5, 5.5)),
    # hepatic veins: from the IVC confluence to the right, middle and left ends
    "right_hepatic_vein": (((-18, 12, 150), (-75, -5, 118)), (5.5, 2.5)),
    "middle_hepatic_vein": (((-18, 12, 150), (-40, -38, 128)), (5.5, 2.5)),
    "left_hepatic_vein": (((-18, 12, 150), (8, -32, 122)), (5.5, 2.5)),
    # arteries and veins not attached to a kidney (the renal vessels follow the drawn kidneys)
    "superior_mesenteric_artery": (((14, -6, 8), (11, -22, -20), (4, -30, -80)), (4, 3.5, 3)),
    "celiac_hepatic_artery": (((12, -6, 30), (10, -18, 36), (-30, -14, 42)), (3.5, 3, 2.5)),
    "splenic_artery": (((10, -18, 36), (40, 0, 34), (76, 30, 44)), (3, 2.5, 2.5)),
    "left_iliac_artery": (((16, 4, -118), (50, 8, -180), (72, 20, -260)), (7, 6.5, 6)),
    "right_iliac_artery": (((16, 4, -118), (-20, 8, -180), (-70, 20, -260)), (7, 6.5, 6)),
    "left_iliac_vein": (((-24, 8, -122), (30, 14, -180), (66, 26, -260)), (8, 7.5, 7)),
    "right_iliac_vein": (((-24, 8, -122), (-40, 14, -180), (-76, 26, -260)), (8, 7.5, 7)),
    "colon": (  # caecum, ascending, transverse, descending, sigmoid, rectum
        (
            (-72, -20, -128),
            (-88, 6, -70),
            (-88, 4, -20),
            (-76, -30, 2),
            (-40, -62, -22),
            (0, -66, -36),
            (40, -60, -16),
            (84, -14, 36),
            (98, 16, -10),
            (94, 22, -90),
            (60, 0, -160),
            (20, 8, -200),
            (0, 50, -235),
            (0, 55, -300),
        ),
        (24, 23, 22, 21, 20, 20, 20, 20, 19, 18, 17, 16, 17, 15),
    ),
}
