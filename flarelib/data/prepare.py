"""Make a run's data available: generate the phantom when the params ask for it and it is missing.

The phantom's folder holds ``GENERATED.json`` with the hash of the params that made it; a different
hash regenerates it. Generation goes to a sibling temp folder renamed into place when complete, so
an interrupted generation never leaves a half-written dataset that looks finished.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from flarelib.config import params_hash
from flarelib.errors import FlareInputError
from flarelib.paths import atomic_write_text, data_root

MARKER = "GENERATED.json"


def phantom_key(params) -> str:
    """Hash of everything the phantom depends on: its section and the master seed."""
    return params_hash({"phantom": params.phantom, "seed": params.run.seed})


def write_marker(params, folder: str | Path) -> Path:
    """Mark ``folder`` as the complete phantom of ``params`` (what :func:`ensure_data` checks)."""
    text = json.dumps({"key": phantom_key(params), "profile": params.run.profile}) + "\n"
    return atomic_write_text(Path(folder) / MARKER, text)


def ensure_data(params, *, log=print) -> Path:
    """The data root, generating the phantom first when the track is ``phantom`` and it is stale."""
    root = data_root(params)
    if params.data.track != "phantom":
        if not root.is_dir():
            raise FlareInputError(
                root, "data folder not found", "set FLARE_DATA or data.root in params to the dataset's folder"
            )
        return root
    key = phantom_key(params)
    marker = root / MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text()).get("key") == key:
                return root
        except json.JSONDecodeError:
            pass
        log(f"phantom at {root} was made with other params: regenerating")
    from flarelib.data.phantom.generate import generate

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
