"""Headless figures: training curves of a loop log."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd

from flarelib.viz.figures import training_curves_figure


def test_training_curves_one_panel_per_present_column(tmp_path):
    it = np.arange(1, 101)
    log = pd.DataFrame({"iteration": it, "loss_sup": 2.0 / np.sqrt(it), "loss_con": 0.01 * np.ones(100)})
    fig = training_curves_figure(log, ["loss_sup", "missing", "loss_con"], out_png=tmp_path / "c.png")
    assert [ax.get_title() for ax in fig.axes] == ["loss_sup", "loss_con"]
    raw, smooth = fig.axes[0].get_lines()
    assert np.allclose(raw.get_ydata(), log["loss_sup"])
    assert smooth.get_ydata()[-1] > raw.get_ydata()[-1]  # running mean of a falling curve lags above it
    assert (tmp_path / "c.png").stat().st_size > 5_000
