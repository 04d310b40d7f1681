"""flarelib.study.render: every executed notebook to two HTML pages, and an index linking them."""

import json

import nbformat
import pytest

from flarelib.study.flow import link_shared
from flarelib.study.render import executed_notebooks, render_profile


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("FLARE_OUTPUTS", str(tmp_path))
    return tmp_path / "smoke"


def _stage(outputs, run, stage, *, failed=False):
    folder = outputs / run / stage
    folder.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"x = '{run}/{stage}'")]
    name = f"{stage}.failed.ipynb" if failed else f"{stage}.ipynb"
    nbformat.write(nb, str(folder / name))
    if not failed:
        (folder / "DONE").write_text(json.dumps({"seconds": 12.4}))
    return folder


def test_render_profile_writes_both_pages_and_an_index(outputs):
    done = _stage(outputs, "semi", "03_stage2")
    link_shared(outputs / "semi_wo_amos" / "03_stage2", done)
    _stage(outputs, "proposed", "04_stage3", failed=True)
    _stage(outputs, "report", "09_report")
    pages = render_profile("smoke", log=lambda *_: None)
    status = {(p.run, p.stage): p.status for p in pages}
    assert status == {
        ("report", "09_report"): "done",
        ("proposed", "04_stage3"): "failed",
        ("semi", "03_stage2"): "done",
        ("semi_wo_amos", "03_stage2"): "shared",
    }
    assert pages[0].run == "report"  # the report first
    assert (done / "03_stage2.html").is_file() and (done / "03_stage2.shared.html").is_file()
    assert (outputs / "proposed" / "04_stage3" / "04_stage3.shared.html").is_file()
    index = (outputs / "index.html").read_text()
    assert 'href="semi/03_stage2/03_stage2.shared.html"' in index
    assert index.count('href="semi/03_stage2/03_stage2.html"') == 2  # semi and the run reusing it
    assert "failed" in index and "12 s" in index
    assert str(outputs) not in index


def test_render_keeps_fresh_pages_unless_forced(outputs):
    folder = _stage(outputs, "semi", "03_stage2")
    render_profile("smoke", log=lambda *_: None)
    page = folder / "03_stage2.html"
    page.write_text("kept")
    render_profile("smoke", log=lambda *_: None)
    assert page.read_text() == "kept"
    render_profile("smoke", force=True, log=lambda *_: None)
    assert page.read_text() != "kept"


def test_no_outputs_no_pages(outputs):
    assert executed_notebooks("smoke") == []
