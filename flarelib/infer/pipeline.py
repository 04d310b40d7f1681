"""Per-case inference pipeline and the ``flarelib predict IN OUT --model CKPT`` command.

One case (STUDY.md "Preprocessing", "Inference and post-processing"):

1. ``read``: :func:`flarelib.io.read_image`, then :func:`flarelib.io.reorient_to_lps` (exact axis
   permutation/flip; the original orientation code is kept).
2. ``resample``: to ``params.preprocess.target_spacing_zyx`` (B-spline), then z-score normalisation
   of the whole volume (the segmentation network's input normalisation).
3. ``predict``: :class:`~flarelib.infer.sliding.SlidingWindowPredictor` (the paper's step rule,
   Gaussian weighting, mirroring), argmax to uint8 FLARE ids.
4. ``postprocess``: :func:`~flarelib.infer.postprocess.postprocess` on the LPS label array.
5. ``resample_back``: nearest neighbour onto the exact grid of the LPS-reoriented input, then
   reoriented back to the input's orientation code.
6. ``write``: atomically (:func:`flarelib.io.write_image`), with the input's exact shape, spacing,
   origin and direction (oblique included), uint8.

Each stage is timed (seconds, :attr:`CaseResult.seconds`); the model load is timed once
(:attr:`CasePredictor.load_seconds`).

**Models and params.** ``--model`` takes a checkpoint of :mod:`flarelib.checkpoint`: the
loop's ``checkpoint.pt`` (``{"modules": {name: state_dict}, ...}``: the ``infer.weights`` entry,
``teacher`` or ``student``, is loaded; a checkpoint with a single network uses that one), or a
``model_best.pt`` (``{"state_dict", "which"}``), or a model file of :func:`save_model_file` (the
loop's layout plus ``"params"``). The network's params come from ``--params FILE`` when given,
else from the checkpoint's ``"params"`` entry, else from a resolved ``params.yaml`` beside the
checkpoint or one folder up (what :func:`flarelib.repro.save_run_record` writes), else it is an
error that says to pass ``--params``.

**Inputs.** ``IN`` is one image file (NIfTI ``.nii``/``.nii.gz``, ``.mha``, ``.nrrd``), a folder
of them (every such file in it, sorted), or a folder holding the slices of one DICOM series (read
as one volume, :mod:`flarelib.io.read`); ``FOLDER::SERIES_UID`` picks one series of a folder that
holds several (the error for such a folder lists their UIDs).

**Outputs.** ``OUT`` is a folder (created if missing), or, for one input, an output file name
ending in ``.nii``/``.nii.gz``; predictions are NIfTI, uint8, on the input's exact grid. Outputs
are named like their input with nnU-Net's channel suffix ``_0000`` removed (FLARE naming:
``amos_0540_0000.nii.gz`` -> ``amos_0540.nii.gz``; ``.mha``/``.nrrd`` inputs and a DICOM folder
``series/`` give ``<name>.nii.gz``). Before any work (:func:`plan_outputs`) the command refuses an
``OUT`` that is an input (the file itself, or the input folder), that ends in another suffix (it
would silently become a folder), a file name for several inputs, a folder that cannot be written,
and a ``--timings`` CSV that is an input. Temporary files a killed run left in ``OUT`` are removed.

A bad case (unreadable, truncated, 4-D, one slice, zero or negative voxel size, constant image,
...) is reported as one line naming the file and skipped; the others continue. The exit status is
0 when every case was predicted and 1 when any failed; with a single input a bad case stops the
command with its one line and status 2, as every bad argument does.

Run it as ``flarelib predict`` or ``python -m flarelib.infer.pipeline`` (what the efficiency
measurement starts per case).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io as _io
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from flarelib.checkpoint import load_model, save_model_file
from flarelib.config import Params
from flarelib.errors import FlareInputError
from flarelib.infer.postprocess import postprocess
from flarelib.infer.sliding import SlidingWindowPredictor, make_runtime, resolve_runtime
from flarelib.io import (
    Volume,
    check_slices,
    dicom_series,
    read_image,
    reorient,
    same_grid,
    split_series,
    write_image,
)
from flarelib.models.configuration import check_params
from flarelib.paths import InputSet, check_output_file, check_output_parent, remove_stale_temps
from flarelib.preprocess import PreparedCase, prepare_case, resample_to_reference

__all__ = [
    "STAGES",
    "CasePredictor",
    "CaseResult",
    "add_cli",
    "find_inputs",
    "load_model",
    "main",
    "output_name",
    "plan_outputs",
    "predict_paths",
    "resolve_device",
    "save_model_file",
]

#: Timed stages of one case, in order.
STAGES: tuple[str, ...] = ("read", "resample", "predict", "postprocess", "resample_back", "write")
#: Image files a folder ``IN`` is searched for (a single ``IN`` may be any format SimpleITK reads).
IMAGE_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii", ".mha", ".nrrd")
#: Output file names: predictions are NIfTI.
OUTPUT_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")


# --------------------------------------------------------------------------------------------------
# Preprocessing checks
# --------------------------------------------------------------------------------------------------


def _check_not_constant(vol: Volume, path: Path | str) -> None:
    arr = vol.array
    if arr.size == 0:
        raise FlareInputError(path, "empty image (no voxels)", "pass a non-empty 3-D volume")
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        raise FlareInputError(
            path,
            f"constant image (every voxel is {lo:g}): nothing to segment",
            "check the file: it is blank or was exported without its pixel data",
        )


# --------------------------------------------------------------------------------------------------
# Per case
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class CaseResult:
    """Outcome of one case: ``seconds`` per stage (:data:`STAGES`), ``error`` (one line) on failure."""

    input: Path
    output: Path | None
    ok: bool
    error: str | None = None
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    shape_zyx: tuple[int, int, int] | None = None
    postprocess: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))


class CasePredictor:
    """Model + params for predicting cases one after another.

    Args:
        model: the U-Net (eval mode).
        params: the run's params (``preprocess.target_spacing_zyx``, ``infer``, ``postprocess``,
            ``unet.num_classes``).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).
        progress: tqdm over the windows of each case.
        runtime_dir: where an ONNX export for ``infer.runtime`` onnxruntime/openvino goes
            (default: a temporary folder).
        modality: ``"MR"`` (the default: z-score of the raw intensities) or ``"CT"`` (HU windowed
            with ``preprocess.ct_window_level``/``ct_window_width`` to 0..255 first), as the
            training volumes were normalised (both through :func:`flarelib.preprocess.prepare_case`).

    ``runtime`` is the runtime actually used (``infer.runtime`` with ``auto`` resolved).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        params: Params,
        device: torch.device | str = "auto",
        progress: bool = False,
        runtime_dir: str | Path | None = None,
        load_seconds: float = 0.0,
        modality: str = "MR",
    ):
        if modality not in ("MR", "CT"):
            raise FlareInputError("modality", f"unknown modality {modality!r}", "use MR or CT")
        t0 = time.perf_counter()
        check_params(params, ("unet", "infer"))  # a 2d net predicts one-slice windows, exported or not
        if params.train.augmentation == "none" and params.infer.mirror_axes:
            warnings.warn(
                f"mirroring TTA over axes {tuple(params.infer.mirror_axes)} on a model trained without "
                "mirroring (train.augmentation: none) votes mirrored anatomy: on the phantom it cut the "
                "spleen's Dice from 0.89 to 0.11 (benchmarks/RESULTS.md); set infer.mirror_axes: []",
                stacklevel=2,
            )
        self.modality = modality
        self.device = resolve_device(device)
        self.params = params
        self.model = model.eval().to(self.device)
        runtime: Any = self.model  # torch: the predictor also checks the window against the net's divisor
        self.runtime = resolve_runtime(params.infer.runtime, self.device)
        if self.runtime != "torch":
            runtime = make_runtime(
                self.runtime,
                self.model,
                params.infer.window_zyx,
                self.device,
                params.infer.half_precision,
                cache_dir=runtime_dir,
                cpu_precision=params.infer.cpu_precision,
            )
        self.sliding = SlidingWindowPredictor.from_params(
            runtime,
            params.infer,
            params.unet.num_classes,
            device=self.device,
            progress=progress,
            swap_lr_labels=params.train.swap_lr_labels,
        )
        # Model loading as FLARE times it: reading the checkpoint (given) plus any runtime export.
        self.load_seconds = float(load_seconds) + time.perf_counter() - t0

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Path,
        params: Params | str | Path | None = None,
        device: torch.device | str = "auto",
        progress: bool = False,
    ) -> CasePredictor:
        t0 = time.perf_counter()
        dev = resolve_device(device)
        model, p, _ = load_model(checkpoint, params, device=dev)
        return cls(model, p, dev, progress, load_seconds=time.perf_counter() - t0)

    def prepare(self, vol: Volume) -> PreparedCase:
        """The network's input for ``vol``: :func:`flarelib.preprocess.prepare_case` with the
        training spacing, ``zscore`` and this predictor's modality, as the training volumes were
        made (:func:`flarelib.train.stages.load_train_volume`)."""
        return prepare_case(
            vol,
            spacing_zyx=self.params.preprocess.target_spacing_zyx,
            intensity="zscore",
            modality=self.modality,
            preprocess=self.params.preprocess,
        )

    def predict_volume(
        self, vol: Volume, seconds: dict[str, float] | None = None, report: dict[str, Any] | None = None
    ) -> Volume:
        """Labels (uint8 FLARE ids) of an image :class:`Volume`, on exactly the image's grid.

        ``seconds`` receives the times of the stages after ``read`` (resample, predict,
        postprocess, resample_back); ``report`` the post-processing report.
        """
        seconds = {} if seconds is None else seconds
        path = vol.path or "<image>"
        _check_not_constant(vol, path)
        t = time.perf_counter()
        prep = self.prepare(vol)
        image, res, lps, code = prep.image, prep.grid, prep.lps, prep.orientation
        seconds["resample"] = time.perf_counter() - t

        t = time.perf_counter()
        labels = self.sliding.predict_labels(image)
        seconds["predict"] = time.perf_counter() - t

        t = time.perf_counter()
        labels = postprocess(labels, self.params.postprocess, report=report)
        seconds["postprocess"] = time.perf_counter() - t

        t = time.perf_counter()
        lab = Volume(labels, res.spacing_zyx, res.origin_xyz, res.direction, vol.path)
        back = resample_to_reference(lab, lps, is_label=True)
        back = reorient(back, code)
        if back.shape != vol.shape or not same_grid(back, vol, atol_mm=1e-2, atol_dir=1e-5):
            raise RuntimeError(
                f"{path}: the resampled prediction's grid {back!r} does not match the input's {vol!r}"
            )
        out = vol.with_array(np.ascontiguousarray(back.array, dtype=np.uint8))
        seconds["resample_back"] = time.perf_counter() - t
        return out

    def predict_file(self, in_path: str | Path, out_path: str | Path) -> CaseResult:
        """Read, predict and write one case; raises on a bad case (see :func:`predict_paths`)."""
        in_path, out_path = Path(in_path), Path(out_path)
        seconds: dict[str, float] = {}
        t = time.perf_counter()
        vol = read_image(in_path)
        check_slices(vol, in_path)
        seconds["read"] = time.perf_counter() - t
        report: dict[str, Any] = {}
        out = self.predict_volume(vol, seconds, report)
        t = time.perf_counter()
        write_image(out, out_path, dtype=np.uint8)
        seconds["write"] = time.perf_counter() - t
        return CaseResult(
            in_path, out_path, True, None, {s: seconds.get(s, 0.0) for s in STAGES}, vol.shape, report
        )


def resolve_device(device: torch.device | str) -> torch.device:
    """``auto``: CUDA when available, else the CPU; anything else as torch reads it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# --------------------------------------------------------------------------------------------------
# Many cases
# --------------------------------------------------------------------------------------------------


def _is_image(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and not name.startswith(".") and name.endswith(IMAGE_SUFFIXES)


def find_inputs(path: str | Path) -> list[Path]:
    """The input images: ``path`` itself (a file, a DICOM folder, ``FOLDER::UID``), or every image
    file (:data:`IMAGE_SUFFIXES`) in a folder, or the folder itself when it holds one DICOM series."""
    if split_series(path)[1] is not None:
        return [Path(str(path))]
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if _is_image(p))
        if files:
            return files
        series = dicom_series(path)
        if len(series) == 1:
            return [path]
        if series:
            read_image(path)  # raises the error that lists the series and the FOLDER::UID fix
        raise FlareInputError(
            path,
            "no images (.nii, .nii.gz, .mha, .nrrd) and no DICOM series in this folder",
            "point IN at an image file, a folder of images, or a folder of the DICOM slices of one series",
        )
    if not path.exists():
        raise FlareInputError(path, "input not found", "pass an image file or a folder of images")
    return [path]


def output_name(in_path: str | Path) -> str:
    """Output file name for an input: the same name with a trailing ``_0000`` channel tag removed;
    ``.mha``/``.nrrd`` inputs and DICOM folders (``FOLDER[::UID]``) get ``.nii.gz``."""
    folder, uid = split_series(in_path)
    if uid is not None or folder.is_dir():
        return folder.name + (f"_{uid}" if uid else "") + ".nii.gz"
    name = Path(in_path).name
    for suffix in OUTPUT_SUFFIXES:
        if name.lower().endswith(suffix):
            stem, ext = name[: -len(suffix)], name[-len(suffix) :]
            break
    else:
        stem, ext = (name.split(".", 1)[0] if "." in name else name), ".nii.gz"
    if stem.endswith("_0000"):
        stem = stem[: -len("_0000")]
    return stem + ext


def _names_a_file(out: Path) -> bool:
    return out.name.lower().endswith(OUTPUT_SUFFIXES) and not out.is_dir()


def plan_outputs(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    source: str | Path | None = None,
    also_read: Iterable[str | Path] = (),
) -> list[Path]:
    """The output file of each input, checked before any work; raises :class:`FlareInputError`.

    ``out``: a folder, or one ``.nii``/``.nii.gz`` file name for a single input. ``source``: the
    ``IN`` argument (a folder ``IN`` may not be ``OUT``); ``also_read``: other files the command
    reads (model, params), which no output may replace either. Refused: an output that is an
    input, ``OUT`` equal to the input folder, an ``OUT`` ending in another suffix (it would become a
    folder), one file name for several inputs, two inputs with one output name, an unwritable
    folder, a read-only existing output.
    """
    inputs = [Path(str(p)) for p in inputs]
    out = Path(out)
    read = InputSet([*inputs, *also_read])
    if _names_a_file(out):
        if len(inputs) > 1:
            raise FlareInputError(
                out,
                f"OUT names one file but IN holds {len(inputs)} images",
                "pass an output folder (one prediction per image is written into it)",
            )
        targets = [out]
    else:
        if out.exists() and not out.is_dir():
            raise FlareInputError(
                out,
                "OUT exists and is neither a folder nor a .nii/.nii.gz file",
                "pass an output folder or a new .nii.gz file name",
            )
        if not out.exists() and out.suffix and len(inputs) == 1:
            raise FlareInputError(
                out,
                f"OUT ends in {out.suffix!r}, neither .nii nor .nii.gz, so it would become a folder",
                "name the output file .nii.gz (predictions are NIfTI), or create the folder first",
            )
        if source is not None:
            src_folder, _ = split_series(source)
            if src_folder.is_dir() and InputSet([src_folder]).find(out) is not None:
                raise FlareInputError(
                    out,
                    "OUT is the input folder: predictions would replace or mix with its images",
                    "pass another output folder",
                )
        check_output_parent(out / "x")
        targets = [out / output_name(p) for p in inputs]
    seen: dict[Path, Path] = {}
    for path, target in zip(inputs, targets, strict=True):
        if target in seen:
            raise FlareInputError(
                target,
                f"inputs {seen[target].name} and {path.name} would both be written here",
                "rename one of them, or predict them into separate folders",
            )
        seen[target] = path
        check_output_file(target, read, option="OUT")
    return targets


def _one_line(exc: BaseException, path: Path) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, FlareInputError):
        return text if str(path) in text else f"{path}: {text}"
    return f"{path}: unexpected {type(exc).__name__}: {text}"


def predict_paths(
    predictor: CasePredictor,
    inputs: Iterable[str | Path],
    out: str | Path,
    progress: bool = True,
    debug: bool = False,
    log: Any = None,
    source: str | Path | None = None,
) -> list[CaseResult]:
    """Predict every input; a case that fails is reported (one line on ``log``, default stderr)
    and skipped. ``out`` is a folder, or an output file name when there is a single input; the
    outputs are checked first (:func:`plan_outputs`; ``source``: the ``IN`` folder). With a single
    input, a bad input raises :class:`FlareInputError` (one line) instead."""
    inputs = [Path(str(p)) for p in inputs]
    targets = plan_outputs(inputs, out, source=source)
    for folder in {t.parent for t in targets}:
        remove_stale_temps(folder)  # left by a run killed mid-write
    from tqdm.auto import tqdm

    results: list[CaseResult] = []
    bar = tqdm(inputs, desc="predict", unit="case", disable=not progress, dynamic_ncols=True)
    for path, target in zip(bar, targets, strict=True):
        try:
            results.append(predictor.predict_file(path, target))
        except (FlareInputError, RuntimeError, OSError, ValueError) as exc:
            if debug:
                raise
            line = _one_line(exc, path)
            if len(inputs) == 1 and isinstance(exc, FlareInputError):
                raise FlareInputError(None, line) from None
            if progress:
                tqdm.write(f"error: {line}", file=log or sys.stderr)
            else:
                print(f"error: {line}", file=log or sys.stderr)
            results.append(CaseResult(path, None, False, line))
    return results


def write_timings(results: Sequence[CaseResult], path: str | Path, load_seconds: float = 0.0) -> Path:
    """CSV: case, ok, shape_zyx, per-stage seconds, total, model load seconds (first row only)."""
    from flarelib.paths import atomic_write_text

    buf = _io.StringIO()
    w = csv.writer(buf)
    w.writerow(["case", "ok", "shape_zyx", *STAGES, "total", "load_model", "error"])
    for i, r in enumerate(results):
        w.writerow(
            [
                r.input.name,
                int(r.ok),
                "x".join(map(str, r.shape_zyx)) if r.shape_zyx else "",
                *(f"{r.seconds.get(s, 0.0):.4f}" for s in STAGES),
                f"{r.total_seconds:.4f}",
                f"{load_seconds:.4f}" if i == 0 else "",
                r.error or "",
            ]
        )
    return atomic_write_text(Path(path), buf.getvalue())


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def add_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``flarelib predict IN OUT --model CKPT [--params FILE]``."""
    parser = subparsers.add_parser(
        "predict",
        help="segment MR/CT volumes with a trained model (sliding window + post-processing)",
        description=(
            "Predict the 13 FLARE organs for one image, every image in a folder, or a DICOM series. "
            "Outputs are NIfTI on the input's exact grid (shape, spacing, origin, direction); an OUT "
            "that is an input is refused. A bad case is reported and skipped; the exit status is 1 "
            "when any case failed."
        ),
    )
    parser.add_argument(
        "input",
        type=Path,
        metavar="IN",
        help="image file (.nii.gz, .nii, .mha, .nrrd), folder of images, or folder of one DICOM series "
        "(FOLDER::SERIES_UID for one of several)",
    )
    parser.add_argument(
        "output", type=Path, metavar="OUT", help="output folder, or a .nii.gz file name for one input"
    )
    parser.add_argument("--model", type=Path, required=True, metavar="CKPT", help="checkpoint or model file")
    parser.add_argument(
        "--params",
        type=Path,
        metavar="FILE",
        help="params file (default: the params saved with the checkpoint)",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "--modality",
        choices=("MR", "CT"),
        default="MR",
        help="input modality: MR (default) or CT (HU, windowed as the CT training volumes were)",
    )
    parser.add_argument(
        "--runtime",
        choices=("auto", "torch", "onnxruntime", "openvino"),
        help="window runtime (default: the params' infer.runtime, auto: OpenVINO/ONNX Runtime on CPU "
        "when installed, else torch)",
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch default)")
    parser.add_argument("--timings", type=Path, metavar="CSV", help="write per-case stage timings here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true", help="stop with a traceback at the first bad case")
    parser.set_defaults(func=_run_cli)
    return parser


def _run_cli(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(int(args.threads))
    inputs = find_inputs(args.input)
    # every output is checked before the model is loaded
    also_read = [p for p in (args.model, args.params) if p is not None]
    targets = plan_outputs(inputs, args.output, source=args.input, also_read=also_read)
    if args.timings:
        check_output_file(args.timings, InputSet([*inputs, *also_read, *targets]), option="--timings")
        remove_stale_temps(Path(args.timings).parent)
    progress = not args.no_progress
    with tempfile.TemporaryDirectory(prefix="flarelib-predict-") as tmp:
        t0 = time.perf_counter()
        device = resolve_device(args.device)
        model, params, _ = load_model(args.model, args.params, device=device)
        if args.runtime:
            infer = dataclasses.replace(params.infer, runtime=args.runtime)
            params = dataclasses.replace(params, infer=infer)
        predictor = CasePredictor(
            model,
            params,
            device,
            runtime_dir=tmp,
            load_seconds=time.perf_counter() - t0,
            modality=args.modality,
        )
        results = predict_paths(
            predictor, inputs, args.output, progress=progress, debug=args.debug, source=args.input
        )
    failed = [r for r in results if not r.ok]
    if args.timings:
        write_timings(results, args.timings, predictor.load_seconds)
    total = sum(r.total_seconds for r in results)
    print(
        f"predicted {len(results) - len(failed)} of {len(results)} cases into {args.output} "
        f"({total:.1f} s, model load {predictor.load_seconds:.1f} s, {predictor.device.type} "
        f"{predictor.runtime})" + (f"; {len(failed)} failed" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m flarelib.infer.pipeline IN OUT --model CKPT``: the predict command alone."""
    parser = argparse.ArgumentParser(prog="python -m flarelib.infer.pipeline")
    sub = parser.add_subparsers()
    add_cli(sub)
    args = parser.parse_args(["predict", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except FlareInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
