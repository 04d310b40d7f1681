"""Summaries of a long score table (``case, sequence, organ, organ_name, dsc, nsd``, one row per case
and scored organ, as :func:`flarelib.evaluate.cases.predict_and_score` makes it).

The paper's convention (Table 4): per organ, mean and standard deviation over cases; the mean score
of a model is the mean over cases of each case's mean over its scored organs, as
:func:`flarelib.evaluate.cases.per_case_table` computes it, and its std is over those case means.
"""

from __future__ import annotations

import pandas as pd

from flarelib.labels import ORGANS

__all__ = ["mean_scores", "organ_summary", "sequence_summary"]


def organ_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Per organ (index: the organ's name in :data:`flarelib.labels.ORGANS`, e.g. ``"right kidney"``,
    the names the paper's tables use, in FLARE id order): ``dsc, dsc_std, nsd, nsd_std, n`` over
    cases. std is the sample standard deviation (ddof 1; NaN with one case)."""
    named = scores.sort_values("organ").assign(organ_name=lambda d: d["organ"].map(ORGANS))
    g = named.groupby("organ_name", sort=False)
    out = pd.DataFrame(
        {
            "dsc": g["dsc"].mean(),
            "dsc_std": g["dsc"].std(),
            "nsd": g["nsd"].mean(),
            "nsd_std": g["nsd"].std(),
            "n": g["dsc"].count(),
        }
    )
    return out


def mean_scores(scores: pd.DataFrame) -> dict[str, float]:
    """``mean_dsc, std_dsc, mean_nsd, std_nsd`` (0..1): over cases, of each case's mean over its
    scored organs; and ``n_cases``."""
    per_case = scores.groupby("case", sort=False)[["dsc", "nsd"]].mean()
    return {
        "mean_dsc": float(per_case["dsc"].mean()),
        "std_dsc": float(per_case["dsc"].std()) if len(per_case) > 1 else 0.0,
        "mean_nsd": float(per_case["nsd"].mean()),
        "std_nsd": float(per_case["nsd"].std()) if len(per_case) > 1 else 0.0,
        "n_cases": len(per_case),
    }


def sequence_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Per MR sequence: mean DSC and NSD over its cases' organ means, and the number of cases."""
    per_case = scores.groupby(["case", "sequence"], sort=False)[["dsc", "nsd"]].mean().reset_index()
    g = per_case.groupby("sequence", sort=False)
    return pd.DataFrame({"dsc": g["dsc"].mean(), "nsd": g["nsd"].mean(), "n": g["dsc"].count()})
