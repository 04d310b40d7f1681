"""Predict labelled cases with a trained model and score them FLARE-exactly: a stage's validation.

Each case goes through the whole per-case pipeline (:class:`flarelib.infer.pipeline.CasePredictor`:
reorient, resample, normalise, sliding window, post-processing, back to the input grid), its
prediction is written to ``out_dir`` (atomically, under the input's case name) and scored against
the case's ground truth with :func:`flarelib.evaluate.metrics.score_case` (organs the dataset does
not annotate are left out, never scored as background).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

COLUMNS = ["case", "sequence", "organ", "organ_name", "dsc", "nsd", "seconds"]


def predict_and_score(
    predictor: Any,
    cases: Sequence[Any],
    out_dir: str | Path,
    *,
    sequences: Mapping[str, str] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """One row per case and scored organ: ``case, sequence, organ, organ_name, dsc, nsd, seconds``.

    ``cases``: layout :class:`~flarelib.data.layout.Case` objects with labels. ``sequences``: case
    id -> MR sequence where the layout does not say (the phantom's validation set records it in its
    diagnostics); otherwise the case's own ``sequence`` (or ``modality``). ``seconds``: the case's
    pipeline time without reading and writing.
    """
    from tqdm.auto import tqdm

    from flarelib.errors import FlareInputError
    from flarelib.infer.pipeline import output_name

    out = Path(out_dir)
    rows = []
    for case in tqdm(cases, desc="predict + score", unit="case", disable=not progress):
        if case.label is None:
            raise FlareInputError(
                case.image, "this case has no label to score against", "pass labelled cases"
            )
        result = predictor.predict_file(case.image, out / output_name(case.image))
        seq = (sequences or {}).get(case.case_id) or case.sequence or case.modality
        seconds = sum(v for k, v in result.seconds.items() if k not in ("read", "write"))
        case_rows = score_file(result.output, case.label, case.label_map, case=case.case_id, sequence=seq)
        rows += [{**row, "seconds": seconds} for row in case_rows]
    return pd.DataFrame(rows, columns=COLUMNS)


def score_file(
    prediction: str | Path,
    truth: str | Path,
    label_map: Any = None,
    *,
    case: str = "",
    sequence: str = "",
) -> list[dict[str, Any]]:
    """FLARE-exact DSC/NSD of one prediction file against one ground-truth file (its header's
    spacing; ``label_map`` maps the truth's ids to FLARE ids and names the organs it does not
    annotate, which are left out): rows with the columns of :data:`COLUMNS` (``seconds`` NaN)."""
    from flarelib.evaluate.metrics import header_spacing, score_case
    from flarelib.io import read_label
    from flarelib.labels import SHORT_NAMES

    gt = read_label(truth, label_map)
    pred = read_label(prediction)
    not_annotated = label_map.not_annotated if label_map is not None else frozenset()
    scores = score_case(gt.array, pred.array, header_spacing(gt.spacing_zyx), not_annotated=not_annotated)
    return [
        {
            "case": case,
            "sequence": sequence,
            "organ": organ,
            "organ_name": SHORT_NAMES[organ],
            "dsc": d,
            "nsd": n,
            "seconds": float("nan"),
        }
        for organ, (d, n) in scores.items()
    ]


def per_case_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean DSC and NSD over organs per case (with its sequence), plus an ``all`` row."""
    per_case = scores.groupby(["case", "sequence"], sort=False)[["dsc", "nsd"]].mean().reset_index()
    total = pd.DataFrame([{"case": "all", "sequence": "", **per_case[["dsc", "nsd"]].mean().to_dict()}])
    return pd.concat([per_case, total], ignore_index=True)
