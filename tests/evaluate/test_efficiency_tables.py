"""Tables 7 and 8 as DataFrames (notebook 06), the choice of cases by size, the machine description."""

from __future__ import annotations

import math

import pytest

from flarelib.evaluate.efficiency import (
    PAPER_TABLE7,
    PAPER_TABLE8,
    TABLE7_COLUMNS,
    TABLE8_ROWS,
    CaseEfficiency,
    averages,
    paper_table7_frame,
    spread_by_size,
    table7_frame,
    table8_frame,
)

NAN = math.nan


def _case(
    name, size, time_s, rc=0, gpu=NAN, gpu_auc=NAN, ram=1000.0, ram_auc=5000.0, cpu=90.0, cpu_auc=400.0
):
    return CaseEfficiency(name, size, time_s, rc, gpu, gpu_auc, ram, ram_auc, cpu, 100.0, cpu_auc)


def test_table7_orders_by_voxels_and_puts_the_nearest_paper_case_beside():
    results = [
        _case("big", (1000, 1000, 80), 30.0),  # 80 M voxels: amos_8082 (86 M)
        _case("unknown", None, 1.0),
        _case("small", (190, 190, 100), 8.0),  # 3.6 M voxels: amos_0540 (3.7 M)
        _case("mid", (400, 400, 110), 12.0),  # 17.6 M: amos_7236 (18.4 M), not amos_0546 (19.4 M)
    ]
    t = table7_frame(results)
    assert list(t.columns) == list(TABLE7_COLUMNS)
    assert list(t.index) == ["small", "mid", "big", "unknown"]  # increasing size, unknown last
    assert t.loc["small", "voxels"] == 190 * 190 * 100
    assert t.loc["small", "size (x, y, z)"] == "(190, 190, 100)"
    assert list(t["paper case"]) == ["amos_0540", "amos_7236", "amos_8082", ""]
    assert t.loc["big", "paper time (s)"] == pytest.approx(22.36)
    assert t.loc["mid", "paper max GPU (MB)"] == 3526
    assert t.loc["mid", "paper voxels"] == 400 * 400 * 115
    assert math.isnan(t.loc["unknown", "paper time (s)"])
    assert t.loc["big", "time (s)"] == 30.0 and t.loc["big", "max RAM (MB)"] == 1000.0
    assert math.isnan(t.loc["small", "max GPU (MB)"])  # no GPU sampled: NaN, not 0


def test_paper_table7_frame_is_the_paper_table():
    p = paper_table7_frame()
    assert list(p.index) == [row[0] for row in PAPER_TABLE7]
    assert p.loc["amos_0557", "voxels"] == 512 * 152 * 512
    assert p.loc["amos_7324", "GPU AUC (MB s)"] == 20379


def test_table8_averages_the_cases_that_finished_and_skips_nan():
    results = [
        _case("a", (10, 10, 10), 10.0, gpu=3000.0, gpu_auc=20000.0, cpu=80.0),
        _case("b", (20, 20, 20), 14.0, gpu=NAN, gpu_auc=NAN, cpu=100.0),  # GPU not sampled here
        _case("failed", (30, 30, 30), 999.0, rc=1, gpu=9999.0, cpu=1.0),  # excluded
    ]
    avg = averages(results)
    assert avg["n_cases"] == 2
    assert avg["time_s"] == pytest.approx(12.0)
    assert avg["max_gpu_mb"] == pytest.approx(3000.0)
    assert avg["cpu_percent"] == pytest.approx(90.0)
    t = table8_frame(results)
    assert list(t.index) == [name for name, _ in TABLE8_ROWS.values()]
    assert list(t.columns) == ["unit", "ours", "paper", "ours / paper"]
    assert t.loc["Time", "ours"] == pytest.approx(12.0)
    assert t.loc["Time", "paper"] == PAPER_TABLE8["time_s"]
    assert t.loc["Time", "ours / paper"] == pytest.approx(12.0 / 11.8)
    assert t.loc["RAM", "unit"] == "MB" and t.loc["AUC RAM Time", "unit"] == "MB s"
    assert t.loc["GPU Memory", "ours"] == pytest.approx(3000.0)


def test_table8_without_gpu_is_nan_not_zero():
    t = table8_frame([_case("a", (10, 10, 10), 5.0), _case("b", (5, 5, 5), 7.0)])
    assert math.isnan(t.loc["GPU Memory", "ours"]) and math.isnan(t.loc["AUC GPU Time", "ours / paper"])
    assert t.loc["Time", "ours"] == pytest.approx(6.0)
    assert t.loc["RAM", "ours"] == pytest.approx(1000.0)
    assert all(math.isnan(v) for k, v in averages([]).items() if k != "n_cases")


def test_spread_by_size_keeps_the_extremes_and_spreads_between():
    names = list("abcdefg")
    sizes = [(7, 1, 1), (1, 1, 1), (5, 1, 1), None, (3, 1, 1), (2, 1, 1), (6, 1, 1)]
    # sorted by voxels: b(1) f(2) e(3) c(5) g(6) a(7), then d (unknown size)
    assert spread_by_size(names, sizes, 0) == ["b", "f", "e", "c", "g", "a", "d"]
    assert spread_by_size(names, sizes, 10) == ["b", "f", "e", "c", "g", "a", "d"]
    assert spread_by_size(names, sizes, 2) == ["b", "d"]
    assert spread_by_size(names, sizes, 3) == ["b", "c", "d"]
    known = [s for s in sizes if s is not None]
    kn = [n for n, s in zip(names, sizes, strict=True) if s is not None]
    assert spread_by_size(kn, known, 2) == ["b", "a"]
    assert spread_by_size(kn, known, 4) == ["b", "e", "c", "a"]  # positions 0, 1.67, 3.33, 5 rounded
    assert spread_by_size(kn, known, 1) == ["e"]  # the median
    picked = spread_by_size(kn, known, 5)
    assert len(set(picked)) == 5 and picked[0] == "b" and picked[-1] == "a"
    with pytest.raises(ValueError):
        spread_by_size(names, sizes[:-1], 2)


def test_describe_machine_names_cpu_ram_gpu_and_torch():
    from flarelib.repro import describe_machine

    m = describe_machine()
    assert set(m) >= {"cpu", "cores", "cores_usable", "ram_gib", "gpu", "gpus", "torch", "torch_cuda"}
    assert m["cpu"] and m["cores"] >= 1 and 1 <= m["cores_usable"] <= m["cores"]
    assert m["ram_gib"] is None or m["ram_gib"] > 0
    assert (m["gpu"] is None) == (m["gpus"] == [])
    import torch

    assert m["torch"] == torch.__version__


def test_size_curve_figure_drops_nan_points(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from flarelib.viz.figures import size_curve_figure

    fig = size_curve_figure(
        {
            "ours": ([1e5, NAN, 3e5], [2.0, 5.0, NAN]),
            "paper": ([3.7e6, 8.6e7], [9.1, 22.4]),
            "empty": ([], []),
        },
        out_png=tmp_path / "t.png",
    )
    lines = fig.axes[0].get_lines()
    assert [len(line.get_xdata()) for line in lines] == [1, 2]
    assert (tmp_path / "t.png").stat().st_size > 1000
