"""Executed notebooks as HTML that can be shared: with or without code, and with no machine path.

A rendered report travels (a collaborator's browser, a paper's supplement), so every absolute path
of this machine in it (the project folder, the data folder of ``FLARE_DATA``, the Python and venv
prefixes, the home and temporary folders) is rewritten to a neutral placeholder:

* the project root -> ``.`` (so ``/home/me/flare-study/outputs/x`` reads ``./outputs/x``)
* the data root (``FLARE_DATA`` or ``../shared/data``) -> ``$FLARE_DATA``
* Python's prefixes (site-packages in tracebacks) -> ``<python>``
* the home folder -> ``~``; the temporary folder -> ``<tmp>``
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

from flarelib.paths import atomic_write_text, project_root

__all__ = ["clean_paths", "machine_paths", "notebook_html"]


def machine_paths() -> list[tuple[str, str]]:
    """``(absolute path, placeholder)`` pairs, longest path first (so a nested path wins)."""
    root = project_root()
    pairs: dict[str, str] = {}

    def add(path, placeholder: str) -> None:
        if not path:
            return
        for p in {str(Path(path)), os.path.realpath(path)}:
            if len(p) > 1:
                pairs.setdefault(p, placeholder)

    data = os.environ.get("FLARE_DATA") or str(root.parent / "shared" / "data")
    add(data, "$FLARE_DATA")
    add(root.parent / "shared", "../shared")
    add(root, ".")
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        add(prefix, "<python>")
    add(tempfile.gettempdir(), "<tmp>")
    add(os.path.expanduser("~"), "~")
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def clean_paths(text: str, pairs: list[tuple[str, str]] | None = None) -> str:
    """``text`` with every absolute machine path of :func:`machine_paths` replaced (also in their
    ``file://`` and JSON-escaped forms)."""
    for path, placeholder in pairs if pairs is not None else machine_paths():
        escaped = path.replace("/", "\\/")
        # a path is replaced only where it ends (followed by a separator, quote, space or end)
        pattern = re.compile(
            r"(?:file://)?(" + re.escape(path) + "|" + re.escape(escaped) + r")(?=[/\\\s\"'<>:),\]]|$)"
        )
        text = pattern.sub(lambda _m, p=placeholder: p, text)
    return text


def notebook_html(ipynb: str | Path, html: str | Path, *, code: bool = True) -> Path:
    """Render an executed notebook to ``html`` (atomically), machine paths cleaned. ``code=False``:
    without code cells or prompts, the version to share with readers of results."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    if not code:
        exporter.exclude_input = True
        exporter.exclude_input_prompt = True
        exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nbformat.read(str(ipynb), as_version=4))
    return atomic_write_text(Path(html), clean_paths(body))
