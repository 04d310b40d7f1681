"""flarelib.study.sources: what a run's models may learn from."""

from pathlib import Path

import numpy as np

from flarelib.config import compose_params
from flarelib.data.layout import Case
from flarelib.labels import LabelMap
from flarelib.paths import project_root
from flarelib.study.sources import learnable_mask


def _case(cid, role, modality, label_map):
    image, label = Path(f"{cid}.nii.gz"), Path(f"{cid}_l.nii.gz")
    return Case("s", role, cid, image, label, modality, None, None, label_map)


def test_learnable_mask_is_the_union_of_what_labelled_ct_annotates():
    params = compose_params(project_root() / "params/runs/proposed.yaml", "smoke", "real")
    btcv = LabelMap.identity("btcv", not_annotated=[12])
    chaos = LabelMap.identity("chaos", not_annotated=range(4, 13))
    cases = [_case("ct0", "ct_labeled", "CT", btcv), _case("mr0", "mr_val", "MR", chaos)]
    mask = learnable_mask(params, cases)
    assert mask.dtype == bool and mask[0] and not mask[12] and mask.sum() == 13  # MR labels do not count
    # a second CT set that annotates the duodenum makes it learnable
    cases.append(_case("ct1", "ct_labeled", "CT", LabelMap.identity("full")))
    assert learnable_mask(params, cases).all()
    # no labelled CT at all: nothing to restrict
    assert np.array_equal(learnable_mask(params, cases[1:2]), np.ones(14, bool))
