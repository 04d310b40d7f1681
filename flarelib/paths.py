"""Where things live: the project root, data roots, and ``outputs/<profile>/<run>/<NN_stage>/``.

Relative paths in params are relative to the project root (the folder with ``pyproject.toml`` and
``params/``). The real and flare24 data tracks take their root from the environment variable
``FLARE_DATA`` when it is set, else from ``data.root``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from flarelib.errors import FlareInputError

ENV_DATA = "FLARE_DATA"
ENV_OUTPUTS = "FLARE_OUTPUTS"


def project_root() -> Path:
    """The project folder: nearest parent of the cwd holding ``params/base.yaml``, else the package's."""
    for candidate in (Path.cwd(), *Path.cwd().parents):
        if (candidate / "params" / "base.yaml").is_file() and (candidate / "pyproject.toml").is_file():
            return candidate
    return Path(__file__).resolve().parents[1]


def resolve(path: str | os.PathLike, base: Path | None = None) -> Path:
    """An absolute path: ``path`` itself if absolute, else relative to ``base`` (the project root)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base or project_root()) / p


def data_root(params) -> Path:
    """The data root of ``params.data``: ``$FLARE_DATA`` for real/flare24 tracks, else ``data.root``.

    ``{profile}`` in ``data.root`` is replaced by the run's profile (the phantom's size depends on it).
    """
    env = os.environ.get(ENV_DATA)
    if env and params.data.track in ("real", "flare24"):
        return Path(env).expanduser().resolve()
    return resolve(params.data.root.replace("{profile}", params.run.profile))


def outputs_root() -> Path:
    """``$FLARE_OUTPUTS`` or ``<project>/outputs``."""
    env = os.environ.get(ENV_OUTPUTS)
    return Path(env).expanduser().resolve() if env else project_root() / "outputs"


def stage_dir(profile: str, run: str, stage: str, root: Path | None = None) -> Path:
    """``outputs/<profile>/<run>/<stage>/`` (not created)."""
    for name, value in (("profile", profile), ("run", run), ("stage", stage)):
        if not value or "/" in value or value.startswith("."):
            raise FlareInputError(
                None, f"{name} {value!r} is not a valid folder name", "use letters, digits, '_' or '-'"
            )
    return (root or outputs_root()) / profile / run / stage


@contextlib.contextmanager
def atomic_writer(path: Path):
    """Open a temp file beside ``path`` for binary writing; on success it replaces ``path``.

    On any exception the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder and ``os.replace``."""
    with atomic_writer(path) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: Path, text: str) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))
