"""``flarelib report``: every executed notebook of a profile rendered to HTML twice, and an index.

For each ``outputs/<profile>/<run>/<NN_stage>/<NN_stage>.ipynb`` (and a failed run's
``<NN_stage>.failed.ipynb``, so its error can be read) this writes beside it ``<NN_stage>.html`` (as
executed, code included) and ``<NN_stage>.shared.html`` (without code cells, for sharing), machine
paths removed (:mod:`flarelib.publish`). ``outputs/<profile>/index.html`` links every run and stage
(a stage reused from an identical run links to that run's pages), the report notebook first. An
HTML page newer than its notebook is kept unless ``force``.
"""

from __future__ import annotations

import argparse
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

from flarelib.paths import atomic_write_text, outputs_root
from flarelib.publish import clean_paths, notebook_html
from flarelib.study.flow import REPORT_STAGE, SAME_AS, STAGES

__all__ = ["Page", "executed_notebooks", "render_profile", "write_index"]


@dataclass(frozen=True)
class Page:
    """One stage of one run: its notebook and its two renderings (paths), and its status."""

    run: str
    stage: str
    status: str  # done, failed, shared, started
    notebook: Path | None
    seconds: float | None = None

    @property
    def full(self) -> Path | None:
        return None if self.notebook is None else self.notebook.parent / f"{self.stage}.html"

    @property
    def shared(self) -> Path | None:
        return None if self.notebook is None else self.notebook.parent / f"{self.stage}.shared.html"


def _stage_page(run: str, folder: Path) -> Page | None:
    stage = folder.name
    pointer = folder / SAME_AS
    if pointer.is_file():
        target = (folder / json.loads(pointer.read_text())["folder"]).resolve()
        page = _stage_page(target.parent.name, target)
        return Page(run, stage, "shared", page.notebook if page else None, page.seconds if page else None)
    done, failed = folder / f"{stage}.ipynb", folder / f"{stage}.failed.ipynb"
    seconds = None
    if (folder / "DONE").is_file() and done.is_file():
        try:
            seconds = json.loads((folder / "DONE").read_text()).get("seconds")
        except (json.JSONDecodeError, OSError):
            seconds = None
        return Page(run, stage, "done", done, seconds)
    if failed.is_file():
        return Page(run, stage, "failed", failed)
    return Page(run, stage, "started", None) if folder.is_dir() else None


def executed_notebooks(profile: str) -> list[Page]:
    """Every run's stage pages of ``profile``, runs in name order (the reports first), stages in
    study order."""
    root = outputs_root() / profile
    if not root.is_dir():
        return []
    stages = [*STAGES, REPORT_STAGE]
    runs = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")),
        key=lambda p: (not p.name.startswith("report"), p.name),
    )
    pages = []
    for run in runs:
        for stage in stages:
            page = _stage_page(run.name, run / stage)
            if page is not None:
                pages.append(page)
    return pages


def _stale(html_path: Path, notebook: Path) -> bool:
    return not html_path.is_file() or html_path.stat().st_mtime < notebook.stat().st_mtime


def render_profile(profile: str, *, force: bool = False, log=print) -> list[Page]:
    """Render every executed notebook of ``profile`` (both versions) and write the index."""
    pages = executed_notebooks(profile)
    rendered = 0
    for page in pages:
        if page.status == "shared" or page.notebook is None:
            continue  # rendered with the run that computed it
        for out, code in ((page.full, True), (page.shared, False)):
            if force or _stale(out, page.notebook):
                notebook_html(page.notebook, out, code=code)
                rendered += 1
    index = write_index(profile, pages)
    log(f"rendered {rendered} HTML page(s) of {len(pages)} stage(s); index: {index}")
    return pages


def _link(page: Page, which: str, index_dir: Path) -> str:
    target = page.full if which == "full" else page.shared
    if target is None:
        return ""
    rel = os.path.relpath(target, index_dir)
    label = "notebook" if which == "full" else "results only"
    return f'<a href="{html.escape(rel)}">{label}</a>'


def write_index(profile: str, pages: list[Page]) -> Path:
    """``outputs/<profile>/index.html``: one table row per run and stage, links relative."""
    index_dir = outputs_root() / profile
    rows = []
    for p in pages:
        secs = "" if p.seconds is None else f"{p.seconds:.0f} s"
        notes = {"shared": "reused from an identical run", "failed": "failed: see the notebook"}
        note = notes.get(p.status, "")
        rows.append(
            f"<tr class='{p.status}'><td>{html.escape(p.run)}</td><td>{html.escape(p.stage)}</td>"
            f"<td>{p.status}</td><td>{secs}</td><td>{_link(p, 'shared', index_dir)}</td>"
            f"<td>{_link(p, 'full', index_dir)}</td><td>{note}</td></tr>"
        )
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>flare-study: {html.escape(profile)} profile</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px}}tr.failed{{background:#fdd}}tr.shared{{color:#666}}</style>
</head><body>
<h1>flare-study: executed notebooks of the {html.escape(profile)} profile</h1>
<p>Each stage of each run: "results only" (no code, for sharing) and the whole executed notebook.
The report (09_report) holds the paper's tables beside ours.</p>
<table><tr><th>run</th><th>stage</th><th>status</th><th>time</th><th>results</th><th>notebook</th>
<th></th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
    return atomic_write_text(index_dir / "index.html", clean_paths(body))


def _cmd(args: argparse.Namespace) -> int:
    pages = render_profile(args.profile, force=args.force)
    if not pages:
        print(f"nothing executed under outputs/{args.profile}/ yet: run `flarelib reproduce` first")
        return 1
    return 0


def add_cli(subparsers) -> None:
    r = subparsers.add_parser("report", help="render every executed notebook to HTML (with and without code)")
    r.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    r.add_argument("--force", action="store_true", help="render again even when the HTML is newer")
    r.set_defaults(func=_cmd)
