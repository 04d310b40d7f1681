"""flarelib.train.translation_check on real data: the fake's organ brightness against the labelled
real MR validation volumes (BTCV CT, CHAOS T2-SPIR)."""

import numpy as np
import torch

from flarelib.config import compose_params
from flarelib.paths import project_root


def test_real_translation_table_with_an_identity_generator(shared_data, monkeypatch):
    from flarelib.train.translation_check import real_translation_table

    monkeypatch.setenv("FLARE_DATA", str(shared_data))
    params = compose_params(
        project_root() / "params/runs/proposed.yaml",
        "smoke",
        "real",
        overrides={"cyclegan": {"patch_zyx": [8, 32, 32]}},
    )
    table, figures = real_translation_table(params, torch.nn.Identity(), max_ct=1)
    assert list(table.columns) == ["fake", "ct", "real"]
    assert set(table.index) == {"liver", "right kidney", "spleen", "left kidney"}
    assert ((table >= 0) & (table <= 255)).all().all()
    # T2-SPIR, known anatomy: the liver is darker than the spleen and the kidneys
    assert table.at["liver", "real"] < min(
        table.at[o, "real"] for o in ("spleen", "right kidney", "left kidney")
    )
    # an identity "translation" is the CT itself, rescaled the way MR is: the same brightness order
    for kind in ("fake", "ct"):
        assert 0.0 <= figures[f"{kind}_order_fraction"] <= 1.0
    assert figures["fake_order_fraction"] == figures["ct_order_fraction"]
    assert np.isfinite(figures["fake_organ_error"]) and figures["ct_organ_error"] > 0
