"""Headless figures of the kidney-DSC filter (Fig. 4) and the anatomy module (Fig. 5)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from flarelib.config import AnatomyParams, RegistrationParams, TransferParams
from flarelib.pseudolabel import transfer as T
from flarelib.viz import pseudolabel_figures as F

from .conftest import body_phantom, organ_boxes


def test_kidney_filter_figure(tmp_path):
    t1w, lab = body_phantom(seed=1)
    vols = {"T1W": t1w, "PVP": body_phantom((4.0, 0.0, 0.0), seed=2)[0]}
    vols["IP"] = body_phantom((0.0, 4.0, 0.0), contrast="dark", seed=3)[0]
    vols["OP"] = vols["IP"]
    res = T.transfer_patient(vols, lab, TransferParams(), RegistrationParams(levels=1), keep_views=True)
    fig = F.kidney_filter_figure(res, spacing_zyx=t1w.spacing_zyx, out_png=tmp_path / "fig4.png")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0].startswith("T1W") and any(t.startswith("PVP: accepted") for t in titles)
    assert any(t.startswith("OP:") and "IP's" in t for t in titles)
    assert (tmp_path / "fig4.png").stat().st_size > 5_000
    plt.close(fig)
    with pytest.raises(ValueError, match="keep_views"):
        F.kidney_filter_figure(T.transfer_patient(vols, lab, TransferParams(), RegistrationParams(levels=1)))


def test_anatomy_examples_and_figure(tmp_path):
    p = AnatomyParams(reference_spacing_zyx=None, connectivity=26)
    cases = F.anatomy_examples(organ_boxes(), p)
    assert [r.passed for _, _, r in cases] == [True, False, False]
    assert ("8" in cases[1][2].by_organ().get(12, [])) and "7" in cases[2][2].by_organ()[9]
    fig = F.anatomy_figure(cases, out_png=tmp_path / "fig5.png")
    assert "passes" in fig.axes[0].get_title() and "Gallbladder" in fig.axes[2].get_title()
    assert (tmp_path / "fig5.png").stat().st_size > 5_000
    plt.close(fig)


def test_coronal_projection_shows_the_most_anterior_organ():
    lab = np.zeros((3, 4, 2), np.uint8)
    lab[:, 1, 0] = 5
    lab[:, 3, 0] = 6
    lab[1, 2, 1] = 7
    proj = F.coronal_projection(lab)
    assert proj.shape == (3, 2)
    assert (proj[:, 0] == 5).all() and proj[1, 1] == 7 and proj[0, 1] == 0
