"""flarelib.publish: HTML of executed notebooks, with and without code, with no machine path."""

import os
import sys
import tempfile

import nbformat

from flarelib.paths import project_root
from flarelib.publish import clean_paths, notebook_html


def _executed(path, text):
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("print(secret_code_marker)")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), code]
    nbformat.write(nb, str(path))
    return path


def test_clean_paths_replaces_each_machine_path():
    root = str(project_root())
    text = (
        f"model {root}/outputs/smoke/x.pt; venv {sys.prefix}/lib/site.py; "
        f"tmp {tempfile.gettempdir()}/abc; home {os.path.expanduser('~')}/.cache; url file://{root}/a"
    )
    out = clean_paths(text)
    assert "./outputs/smoke/x.pt" in out
    assert "<python>/lib/site.py" in out
    for path in (root, sys.prefix, tempfile.gettempdir() + "/", os.path.expanduser("~") + "/"):
        assert path not in out, path
    # a path that merely starts like a machine path is left alone
    # (not compared whole: a project under the temp folder gets that folder replaced, rightly)
    assert not clean_paths(f"{root}extra").startswith(".")


def test_notebook_html_both_versions(tmp_path):
    root = str(project_root())
    nb = _executed(tmp_path / "s.ipynb", f"written to {root}/outputs/smoke/run/stage/metrics.json\n")
    full = notebook_html(nb, tmp_path / "s.html", code=True).read_text()
    shared = notebook_html(nb, tmp_path / "s.shared.html", code=False).read_text()
    for page in (full, shared):
        assert "./outputs/smoke/run/stage/metrics.json" in page
        assert root + "/" not in page
        assert "Title" in page
    assert "secret_code_marker" in full
    assert "secret_code_marker" not in shared
