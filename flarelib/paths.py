"""Where things live: the project root, data roots, and ``outputs/<profile>/<run>/<NN_stage>/``.

Relative paths in params are relative to the project root (the folder with ``pyproject.toml`` and
``params/``). The real and flare24 data tracks take their root from the environment variable
``FLARE_DATA`` when it is set, else from ``data.root``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
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


def display_path(path: str | os.PathLike) -> str:
    """``path`` for messages and metrics without machine-specific prefixes.

    Relative to the outputs root (``outputs/...``) when under it, else to the project root, else as is:
    ``$FLARE_OUTPUTS`` may lie outside the project (a test's temporary folder, a scratch disk).
    """
    p = Path(path)
    for base, prefix in ((outputs_root(), "outputs"), (project_root(), "")):
        with contextlib.suppress(ValueError):
            rel = p.relative_to(base).as_posix()
            return f"{prefix}/{rel}" if prefix else rel
    return str(p)


def stage_dir(profile: str, run: str, stage: str, root: Path | None = None) -> Path:
    """``outputs/<profile>/<run>/<stage>/`` (not created)."""
    for name, value in (("profile", profile), ("run", run), ("stage", stage)):
        if not value or "/" in value or value.startswith("."):
            raise FlareInputError(
                None, f"{name} {value!r} is not a valid folder name", "use letters, digits, '_' or '-'"
            )
    return (root or outputs_root()) / profile / run / stage


#: Marks the temporary files of our atomic writes: ``.NAME.flarelib-tmp-PID-HEX[SUFFIX]`` beside
#: the target. A process killed mid-write (``kill -9``) leaves one; :func:`remove_stale_temps`, which
#: every command calls on the folders it writes into, removes those whose process is gone.
TMP_TAG = ".flarelib-tmp-"
_TMP_RE = re.compile(r"^\..+" + re.escape(TMP_TAG) + r"(?P<pid>\d+)-[0-9a-f]+(\.[^/]*)?$")


def temp_path(path: Path, suffix: str = "") -> Path:
    """A fresh temporary name beside ``path`` (hidden, tagged with our pid; see :data:`TMP_TAG`).

    ``suffix`` ends the name (SimpleITK picks the format from it, e.g. ``.nii.gz``).
    """
    path = Path(path)
    stem = path.name[: -len(suffix)] if suffix and path.name.endswith(suffix) else path.name
    return path.with_name(f".{stem}{TMP_TAG}{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """Delete the temporary files of our atomic writes in ``folder`` whose writer is no longer
    running (it was killed mid-write); returns what was removed. A missing folder is fine."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.rglob(f"*{TMP_TAG}*") if recursive else folder.glob(f"*{TMP_TAG}*"):
        m = _TMP_RE.match(p.name)
        if m and p.is_file() and not _pid_alive(int(m["pid"])):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_writer(path: Path):
    """Open a temp file beside ``path`` for binary writing; on success it replaces ``path``.

    On any exception the temp file is removed and ``path`` is left as it was. The file gets the
    usual permissions (``0o666`` less the umask), as a plain ``open`` would give it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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


# --------------------------------------------------------------------------------------------------
# Outputs never replace inputs; an output's folder is checked before any work
# --------------------------------------------------------------------------------------------------


def _file_id(path: Path) -> tuple[int, int] | str:
    """What makes two paths the same file: (device, inode) when it exists, else the absolute path."""
    try:
        st = path.stat()
    except OSError:
        return os.path.abspath(path)
    return (st.st_dev, st.st_ino)


class InputSet:
    """The files (or folders) a command reads, to refuse an output that is one of them: the same
    path, or another name of the same file (a symlink, a hard link, ``./x`` vs ``x``)."""

    def __init__(self, paths=()):
        self._ids: dict[tuple[int, int] | str, Path] = {}
        for p in paths:
            self.add(p)

    def add(self, path: str | os.PathLike) -> None:
        path = Path(path)
        self._ids.setdefault(_file_id(path), path)

    def find(self, path: str | os.PathLike) -> Path | None:
        """The input that ``path`` is, or None."""
        return self._ids.get(_file_id(Path(path)))


def check_output_parent(path: str | os.PathLike) -> None:
    """Raise unless ``path``'s folder exists as a writable folder or can be created.

    The nearest existing ancestor must be a folder (not a file in the way) and writable.
    """
    path = Path(os.path.abspath(path))
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise FlareInputError(
            parent, f"is not a folder, so {path} cannot be written", "choose an output path in a folder"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FlareInputError(
            parent, f"folder is not writable, so {path} cannot be written", "choose a folder you can write to"
        )


def check_output_file(
    path: str | os.PathLike,
    inputs: InputSet | None = None,
    *,
    overwrite: bool = True,
    option: str = "the output",
) -> Path:
    """Check, before any work, that ``path`` can be written as an output file.

    Refused: an input of the command (always, ``overwrite`` or not), a folder, a path whose folder
    cannot be made or written, an existing file when ``overwrite`` is False, a read-only file.
    Raises :class:`FlareInputError` naming the path and the fix; returns ``Path(path)``.
    """
    path = Path(path)
    same = inputs.find(path) if inputs is not None else None
    if same is not None:
        what = "the same file as the input" if str(same) != str(path) else "the input"
        extra = f" {same}" if str(same) != str(path) else ""
        raise FlareInputError(
            path,
            f"{option} is {what}{extra}: writing it would destroy that input",
            "write the output to another file",
        )
    if path.is_dir():
        raise FlareInputError(
            path, f"{option} is a folder, not a file name", f"name a file, e.g. {path / 'results.csv'}"
        )
    check_output_parent(path)
    if path.exists():
        if not overwrite:
            raise FlareInputError(
                path, f"{option} exists", "pass --overwrite to replace it, or choose another file name"
            )
        if not path.stat().st_mode & 0o222:
            raise FlareInputError(
                path, f"{option} exists and is read-only", "choose another name, or make it writable first"
            )
    return path
