"""flarelib.evaluate.summary on a hand-made score table with known answers."""

import math

import pandas as pd
import pytest

from flarelib.evaluate.summary import mean_scores, organ_summary, sequence_summary


@pytest.fixture
def scores():
    rows = [
        # case a (T1W): liver 1.0/1.0, spleen 0.5/0.0 -> case mean 0.75 / 0.5
        ("a", "T1W", 1, "Liver", 1.0, 1.0),
        ("a", "T1W", 3, "spleen", 0.5, 0.0),
        # case b (T2W): liver 0.5/0.5, spleen 0.5/1.0 -> 0.5 / 0.75
        ("b", "T2W", 1, "liver", 0.5, 0.5),
        ("b", "T2W", 3, "spleen", 0.5, 1.0),
    ]
    return pd.DataFrame(rows, columns=["case", "sequence", "organ", "organ_name", "dsc", "nsd"])


def test_organ_summary_means_and_std_over_cases(scores):
    t = organ_summary(scores)
    assert list(t.index) == ["liver", "spleen"]
    assert t.loc["liver", "dsc"] == pytest.approx(0.75)
    assert t.loc["liver", "dsc_std"] == pytest.approx(math.sqrt(0.125))  # sample std of 1.0, 0.5
    assert t.loc["spleen", "nsd"] == pytest.approx(0.5)
    assert t.loc["spleen", "dsc_std"] == pytest.approx(0.0)


def test_mean_scores_average_case_means(scores):
    m = mean_scores(scores)
    assert m["mean_dsc"] == pytest.approx(0.625)
    assert m["mean_nsd"] == pytest.approx(0.625)
    assert m["std_dsc"] == pytest.approx(math.sqrt(0.03125))
    assert m["n_cases"] == 2


def test_sequence_summary(scores):
    t = sequence_summary(scores)
    assert t.loc["T1W", "dsc"] == pytest.approx(0.75)
    assert t.loc["T2W", "nsd"] == pytest.approx(0.75)
