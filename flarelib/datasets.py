"""Make a run's data available: generate the phantom when the params ask for it and it is missing.

The phantom's folder holds the marker of :mod:`flarelib.data.phantom.marker` (``GENERATED.json``,
the hash of the params that made it); a different hash regenerates it. Generation goes to a
sibling temp folder renamed into place when complete, so an interrupted generation never leaves a
half-written dataset that looks finished.

It lives outside :mod:`flarelib.data` because it calls into :mod:`flarelib.data.phantom`, which
builds on :mod:`flarelib.data` (layouts, manifests): inside, the two packages imported each other.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from flarelib.config import Params
from flarelib.data.phantom.marker import MARKER, marker_key, phantom_key, write_marker
from flarelib.errors import FlareInputError
from flarelib.paths import data_root

__all__ = ["MARKER", "ensure_data", "phantom_key", "write_marker"]


def ensure_data(params: Params, *, log: Callable[[str], object] = print) -> Path:
    """The data root, generating the phantom first when the track is ``phantom`` and it is stale."""
    root = data_root(params)
    if params.data.track != "phantom":
        if not root.is_dir():
            raise FlareInputError(
                root, "data folder not found", "set FLARE_DATA or data.root in params to the dataset's folder"
            )
        return root
    if (root / MARKER).is_file():
        if marker_key(root) == phantom_key(params):
            return root
        log(f"phantom at {root} was made with other params: regenerating")
    from flarelib.data.phantom.generate import generate  # looked up per call: tests replace it

    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"generating the phantom ({params.run.profile} profile) into {root}")
    generate(params, tmp)
    write_marker(params, tmp)
    if root.exists():
        old = root.with_name(root.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        root.rename(old)
        tmp.rename(root)
        shutil.rmtree(old, ignore_errors=True)
    else:
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(root)
    return Path(root)
