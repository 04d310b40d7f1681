"""The catalogue of bad inputs: each command in it must stop with one line that names the file and
the fix, without a traceback, and leave every input byte for byte as it was.

Every entry writes its own small files into a fresh folder, runs ``flarelib`` in this process
(:func:`flarelib.cli.main`), and checks: a non-zero exit status; exactly one message line besides
progress bars (for ``check-data``: exactly one problem line) holding the path of the file it is
about, ``Fix:`` and the entry's keyword; no ``Traceback``; the SHA-256 of every file that was there
before unchanged; no temporary file of ours (``*.flarelib-tmp-*``) left behind.

docs/bad_inputs.md is generated from this catalogue and checked against it
(:func:`test_docs_table_matches_the_catalogue`); after changing a message, regenerate it with::

    FLARE_WRITE_DOCS=1 python -m pytest tests/test_bad_inputs.py -k docs
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import re
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from flarelib.cli import main
from flarelib.io import Volume, write_image
from tests.dicom_support import UID_ROOT, write_dicom_series

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "bad_inputs.md"
TMP_TAG = ".flarelib-tmp-"
PROGRESS = re.compile(r"^\w[\w -]*: +\d+%\|")


# --------------------------------------------------------------------------------------------------
# Small files
# --------------------------------------------------------------------------------------------------


def image_array(shape=(6, 16, 16), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = rng.normal(20.0, 3.0, shape)
    _, y, x = np.indices(shape)
    arr[(y - shape[1] / 2) ** 2 + (x - shape[2] / 2) ** 2 < (shape[1] / 4) ** 2] += 60.0
    return arr.astype(np.float32)


def label_array(shape=(6, 16, 16), organ=1) -> np.ndarray:
    lab = np.zeros(shape, np.uint8)
    lab[1:-1, 4:10, 4:10] = organ
    return lab


def nifti(path: Path, array: np.ndarray, spacing_zyx=(3.0, 1.5, 1.5)) -> Path:
    vol = Volume(array, spacing_zyx, (0.0, 0.0, 0.0), np.eye(3))
    return write_image(vol, path)


def set_pixdim(path: Path, axis_xyz: int, value: float) -> Path:
    """Patch ``pixdim[1 + axis_xyz]`` (the voxel size in mm of NIfTI axis i, j or k) in the raw
    header, the way a broken exporter writes it; the rest of the file is untouched."""
    raw = path.read_bytes()
    gz = raw[:2] == b"\x1f\x8b"
    data = bytearray(gzip.decompress(raw) if gz else raw)
    order = "<" if struct.unpack("<i", data[:4])[0] == 348 else ">"
    struct.pack_into(f"{order}f", data, 76 + 4 * (1 + axis_xyz), value)
    path.write_bytes(gzip.compress(bytes(data)) if gz else bytes(data))
    return path


def dicom(folder: Path, n_slices=5, uid="1", description="T2 SPIR", prefix="slice") -> Path:
    arr = (image_array((n_slices, 16, 16)) * 10).astype(np.int16)
    write_dicom_series(folder, arr, series_uid=f"{UID_ROOT}.{uid}", description=description, prefix=prefix)
    return folder


def checksums(root: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Bad:
    """One bad input: ``make(folder, model)`` writes the files and returns ``(argv, named file)``."""

    id: str
    command: str
    what: str  # the bad input, as docs/bad_inputs.md lists it
    keyword: str  # a regex the message must match (besides the file and ``Fix:``)
    make: Callable[[Path, Path], tuple[list[str], Path]]


CATALOGUE: list[Bad] = []


def bad(command: str, what: str, keyword: str):
    def register(make):
        CATALOGUE.append(Bad(make.__name__, command, what, keyword, make))
        return make

    return register


def predict_argv(inp: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return ["predict", str(inp), str(out), "--model", str(model), "--no-progress", "--device", "cpu", *extra]


# --- predict --------------------------------------------------------------------------------------
@bad("predict", "OUT is the input file", r"is the input")
def predict_out_is_the_input_file(d, model):
    img = nifti(d / "case.nii.gz", image_array())
    return predict_argv(img, img, model), img


@bad("predict", "OUT is the input folder (inputs without `_0000` would be replaced)", r"input folder")
def predict_out_is_the_input_folder(d, model):
    nifti(d / "in" / "case.nii.gz", image_array())
    nifti(d / "in" / "other_0000.nii.gz", image_array(seed=1))
    return predict_argv(d / "in", d / "in", model), d / "in"


@bad("predict", "`--timings` names an input", r"is the input")
def predict_timings_is_an_input(d, model):
    img = nifti(d / "case.nii.gz", image_array())
    return predict_argv(img, d / "seg.nii.gz", model, "--timings", str(img)), img


@bad("predict", "OUT ends in neither `.nii` nor `.nii.gz` (it would become a folder)", r"\.nii")
def predict_out_with_another_suffix(d, model):
    img = nifti(d / "case.nii.gz", image_array())
    return predict_argv(img, d / "seg.png", model), d / "seg.png"


@bad("predict", "OUT names one file but IN holds several images", r"2 images")
def predict_out_file_for_a_folder(d, model):
    nifti(d / "in" / "a.nii.gz", image_array())
    nifti(d / "in" / "b.nii.gz", image_array(seed=1))
    return predict_argv(d / "in", d / "seg.nii.gz", model), d / "seg.nii.gz"


@bad("predict", "OUT's parent is a file", r"not a folder")
def predict_out_parent_is_a_file(d, model):
    img = nifti(d / "case.nii.gz", image_array())
    (d / "notes.txt").write_text("x")
    return predict_argv(img, d / "notes.txt" / "seg.nii.gz", model), d / "notes.txt"


@bad("predict", "zero voxel size in the NIfTI header (SimpleITK would read 1 mm)", r"pixdim")
def predict_zero_spacing(d, model):
    img = set_pixdim(nifti(d / "case.nii.gz", image_array()), 1, 0.0)
    return predict_argv(img, d / "seg.nii.gz", model), img


@bad("predict", "negative voxel size in the NIfTI header (SimpleITK would flip the axis)", r"pixdim")
def predict_negative_spacing(d, model):
    img = set_pixdim(nifti(d / "case.nii.gz", image_array()), 2, -3.0)
    return predict_argv(img, d / "seg.nii.gz", model), img


@bad("predict", "zero voxel size in an `.mha` header", r"voxel size y = 0")
def predict_mha_zero_spacing(d, model):
    import SimpleITK as sitk

    img = d / "case.mha"
    sitk.WriteImage(sitk.GetImageFromArray(image_array()), str(img))
    text = img.read_bytes()
    assert b"ElementSpacing = 1 1 1" in text
    img.write_bytes(text.replace(b"ElementSpacing = 1 1 1", b"ElementSpacing = 1 0 1"))
    return predict_argv(img, d / "seg.nii.gz", model), img


@bad("predict", "a one-slice volume", r"one-slice")
def predict_one_slice(d, model):
    img = nifti(d / "case.nii.gz", image_array((1, 16, 16)))
    return predict_argv(img, d / "seg.nii.gz", model), img


@bad("predict", "a single 2-D DICOM slice", r"DICOM slice")
def predict_single_dicom_slice(d, model):
    dicom(d / "series")
    img = d / "series" / "slice_002.dcm"
    return predict_argv(img, d / "seg.nii.gz", model), img


@bad("predict", "a folder holding two DICOM series", r"2 DICOM series.*::")
def predict_two_dicom_series(d, model):
    dicom(d / "dicom", uid="1", description="T1", prefix="t1")
    dicom(d / "dicom", n_slices=4, uid="2", description="T2", prefix="t2")
    return predict_argv(d / "dicom", d / "out", model), d / "dicom"


@bad("predict", "`FOLDER::UID` names a series the folder does not hold", r"no DICOM series")
def predict_unknown_dicom_series(d, model):
    dicom(d / "dicom")
    return predict_argv(Path(f"{d / 'dicom'}::1.2.3"), d / "out", model), d / "dicom"


@bad("predict", "a folder with neither images nor a DICOM series", r"DICOM")
def predict_folder_without_images(d, model):
    (d / "in").mkdir()
    (d / "in" / "notes.txt").write_text("x")
    return predict_argv(d / "in", d / "out", model), d / "in"


@bad("predict", "an unreadable checkpoint (the message must not advise deleting it)", r"checkpoint")
def predict_bad_checkpoint(d, model):
    img = nifti(d / "case.nii.gz", image_array())
    ckpt = d / "model.pt"
    ckpt.write_bytes(b"not a checkpoint")
    return predict_argv(img, d / "seg.nii.gz", ckpt), ckpt


# --- evaluate -------------------------------------------------------------------------------------
def evaluate_pair(d: Path, gt_array=None, pred_array=None) -> tuple[Path, Path]:
    gt = nifti(d / "gt" / "case.nii.gz", label_array() if gt_array is None else gt_array)
    pred = nifti(d / "pred" / "case.nii.gz", label_array() if pred_array is None else pred_array)
    return pred, gt


@bad("evaluate", "`--out` is a prediction", r"is the input")
def evaluate_out_is_the_prediction(d, model):
    pred, gt = evaluate_pair(d)
    return ["evaluate", str(pred), str(gt), "--out", str(pred), "--overwrite"], pred


@bad("evaluate", "`--out` is a ground truth", r"is the input")
def evaluate_out_is_the_ground_truth(d, model):
    _, gt = evaluate_pair(d)
    return ["evaluate", str(d / "pred"), str(d / "gt"), "--out", str(gt)], gt


@bad("evaluate", "`--out` exists (read-only or not) and `--overwrite` is not given", r"exists")
def evaluate_out_exists(d, model):
    pred, gt = evaluate_pair(d)
    out = d / "results.csv"
    out.write_text("case,organ\n")
    out.chmod(0o444)
    return ["evaluate", str(pred), str(gt), "--out", str(out)], out


@bad("evaluate", "`--out` is read-only, with `--overwrite`", r"read-only")
def evaluate_out_read_only(d, model):
    pred, gt = evaluate_pair(d)
    out = d / "results.csv"
    out.write_text("case,organ\n")
    out.chmod(0o444)
    return ["evaluate", str(pred), str(gt), "--out", str(out), "--overwrite"], out


@bad("evaluate", "`--out` is a folder", r"folder")
def evaluate_out_is_a_folder(d, model):
    pred, gt = evaluate_pair(d)
    (d / "res").mkdir()
    return ["evaluate", str(pred), str(gt), "--out", str(d / "res")], d / "res"


@bad("evaluate", "`--out`'s parent is a file", r"not a folder")
def evaluate_out_parent_is_a_file(d, model):
    pred, gt = evaluate_pair(d)
    (d / "notes.txt").write_text("x")
    return ["evaluate", str(pred), str(gt), "--out", str(d / "notes.txt" / "r.csv")], d / "notes.txt"


@bad("evaluate", "ground-truth label ids above 13 without `--manifest`", r"FLARE ids.*--manifest")
def evaluate_gt_ids_not_flare(d, model):
    pred, gt = evaluate_pair(d, gt_array=label_array(organ=20))
    return ["evaluate", str(pred), str(gt), "--out", str(d / "r.csv")], gt


@bad("evaluate", "zero voxel size in the ground truth's header", r"pixdim")
def evaluate_gt_zero_spacing(d, model):
    pred, gt = evaluate_pair(d)
    set_pixdim(gt, 0, 0.0)
    return ["evaluate", str(pred), str(gt), "--out", str(d / "r.csv")], gt


@bad("evaluate", "a ground-truth folder holding two DICOM series", r"2 DICOM series")
def evaluate_two_dicom_series(d, model):
    dicom(d / "gt", uid="1", prefix="a")
    dicom(d / "gt", uid="2", prefix="b")
    nifti(d / "gt.nii.gz", label_array((5, 16, 16)))
    return ["evaluate", str(d / "gt.nii.gz"), str(d / "gt"), "--out", str(d / "r.csv")], d / "gt"


# --- check-data -----------------------------------------------------------------------------------
SUBSETS = {
    "ct": {
        "role": "ct_labeled",
        "modality": "CT",
        "images": "imagesTr/{case}_0000.nii.gz",
        "labels": "labelsTr/{case}.nii.gz",
    }
}


def dataset(d: Path, *extra: str) -> list[str]:
    """A one-case dataset (``c1``) and its params file; returns the check-data argv."""
    root = d / "data"
    nifti(root / "imagesTr" / "c1_0000.nii.gz", image_array())
    nifti(root / "labelsTr" / "c1.nii.gz", label_array())
    params = d / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"track": "phantom", "root": str(root), "subsets": SUBSETS}}))
    return ["check-data", "--params", str(params), "--no-progress", *extra]


@bad("check-data", "an all-zero label (no organ)", r"no organ")
def check_all_zero_label(d, model):
    argv = dataset(d)
    lab = nifti(d / "data" / "labelsTr" / "c2.nii.gz", np.zeros((6, 16, 16), np.uint8))
    nifti(d / "data" / "imagesTr" / "c2_0000.nii.gz", image_array())
    return argv, lab


@bad("check-data", "a label without an image", r"no image")
def check_label_without_image(d, model):
    argv = dataset(d)
    lab = nifti(d / "data" / "labelsTr" / "c9.nii.gz", label_array())
    return argv, lab


@bad("check-data", "a one-slice volume", r"one-slice")
def check_one_slice(d, model):
    argv = dataset(d)
    img = nifti(d / "data" / "imagesTr" / "c2_0000.nii.gz", image_array((1, 16, 16)))
    nifti(d / "data" / "labelsTr" / "c2.nii.gz", label_array((1, 16, 16)) + 1)
    return argv, img


@bad("check-data", "zero voxel size in a header", r"pixdim")
def check_zero_spacing(d, model):
    argv = dataset(d)
    set_pixdim(d / "data" / "imagesTr" / "c1_0000.nii.gz", 2, 0.0)
    return argv, d / "data" / "imagesTr" / "c1_0000.nii.gz"


@bad("check-data", "zero voxel size in a header, `--no-voxels` (headers only)", r"pixdim")
def check_zero_spacing_headers_only(d, model):
    argv = dataset(d, "--no-voxels")
    set_pixdim(d / "data" / "labelsTr" / "c1.nii.gz", 0, 0.0)
    return argv, d / "data" / "labelsTr" / "c1.nii.gz"


# --- params ---------------------------------------------------------------------------------------
def params_file(d: Path, doc: dict, name="run.yaml") -> Path:
    path = d / name
    path.write_text(yaml.safe_dump(doc))
    return path


@bad("params", "a voxel size that is not positive (`[0, -1, 1.2]`)", r"preprocess\.target_spacing_zyx")
def params_spacing_not_positive(d, model):
    f = params_file(d, {"preprocess": {"target_spacing_zyx": [0, -1, 1.2]}})
    return ["params", "--params", str(f)], f


@bad("params", "a negative iteration count", r"train\.iterations")
def params_negative_iterations(d, model):
    f = params_file(d, {"train": {"iterations": -5}})
    return ["params", "--params", str(f)], f


@bad("params", "a fraction outside 0..1 (`infer.step: 1.5`)", r"infer\.step")
def params_fraction_out_of_range(d, model):
    f = params_file(d, {"infer": {"step": 1.5}})
    return ["params", "--params", str(f)], f


@bad("params", "`extends` names a missing file (the message names the file that extends it)", r"extends")
def params_missing_extends(d, model):
    f = params_file(d, {"extends": "../base_missing.yaml", "train": {"iterations": 5}}, "child.yaml")
    return ["params", "--params", str(f)], f


# --- train ----------------------------------------------------------------------------------------
@bad("train", "an unreadable checkpoint in the output folder (not to be deleted)", r"--restart")
def train_bad_checkpoint(d, model):
    from tests.train.test_cli import _params_file

    params = _params_file(d)
    out = d / "out"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"\x00" * 64)
    argv = ["train", "--params", str(params), "--stage", "seg", "--out", str(out), "--no-progress"]
    return [*argv, "--device", "cpu"], out / "checkpoint.pt"


# --------------------------------------------------------------------------------------------------
# Running an entry
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    from flarelib.checkpoint import save_model_file
    from flarelib.config import Params
    from flarelib.models.unet import unet_from_params

    p = Params()
    p = dataclasses.replace(
        p,
        unet=dataclasses.replace(p.unet, channels=(4, 8), pool_zyx=((1, 2, 2),)),
        preprocess=dataclasses.replace(p.preprocess, target_spacing_zyx=(3.0, 3.0, 3.0)),
        infer=dataclasses.replace(p.infer, window_zyx=(4, 8, 8), mirror_axes=(), runtime="torch"),
    )
    path = tmp_path_factory.mktemp("model") / "model.pt"
    torch.manual_seed(0)
    return save_model_file(path, p, {"teacher": unet_from_params(p.unet).state_dict()})


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.delenv("FLARE_DATA", raising=False)
    yield
    torch.set_num_threads(old)


#: id -> the message of that entry (the docs table is made from these).
MESSAGES: dict[str, str] = {}


def run_entry(entry: Bad, folder: Path, model: Path, capsys) -> str:
    """Run one entry, check it, return its message with ``folder`` made relative."""
    folder.mkdir(parents=True, exist_ok=True)
    argv, named = entry.make(folder, model)
    before = checksums(folder)
    model_sum = hashlib.sha256(model.read_bytes()).hexdigest()
    capsys.readouterr()
    rc = main(argv)
    cap = capsys.readouterr()
    text = cap.out + cap.err
    assert rc != 0, f"{entry.id}: exit status 0\n{text}"
    assert "Traceback" not in text, text
    if entry.command == "check-data":
        lines = [ln[2:] for ln in cap.out.splitlines() if ln.startswith("- ")]
    else:  # a progress bar (tqdm, redrawn with \r) is not a message
        lines = [ln for ln in text.splitlines() if ln.strip() and not PROGRESS.search(ln)]
    assert len(lines) == 1, f"{entry.id}: expected one message line, got:\n{text}"
    line = lines[0].removeprefix("error: ")
    assert str(named) in line, f"{entry.id}: the message does not name {named}:\n{line}"
    assert "Fix:" in line, line
    assert re.search(entry.keyword, line), f"{entry.id}: /{entry.keyword}/ not in:\n{line}"
    assert "delete" not in line.lower(), f"{entry.id}: never advise deleting an input:\n{line}"
    after = checksums(folder)
    changed = [str(p) for p, h in before.items() if after.get(p) != h]
    assert not changed, f"{entry.id}: inputs changed: {changed}"
    assert hashlib.sha256(model.read_bytes()).hexdigest() == model_sum
    leftovers = [str(p) for p in folder.rglob("*") if TMP_TAG in p.name]
    assert not leftovers, leftovers
    return line.replace(f"{folder}{os.sep}", "").replace(str(folder), ".")


@pytest.mark.parametrize("entry", CATALOGUE, ids=[e.id for e in CATALOGUE])
def test_bad_input(entry: Bad, tmp_path, model, capsys):
    MESSAGES[entry.id] = run_entry(entry, tmp_path / "case", model, capsys)


def render_docs(messages: dict[str, str]) -> str:
    head = (
        "# Bad inputs and what flarelib says\n\n"
        "Every row is a test in `tests/test_bad_inputs.py`, which generates this table (do not edit it\n"
        "by hand: `FLARE_WRITE_DOCS=1 python -m pytest tests/test_bad_inputs.py -k docs`). Each command\n"
        "stops with the one line shown (paths are relative to the test's folder), exit status 2 (1 for\n"
        "`check-data`, which lists every problem it finds), no traceback, and every input file byte for\n"
        "byte as it was: no input is ever overwritten. Outputs are written atomically through a\n"
        "temporary file named `.NAME.flarelib-tmp-PID-HEX` beside the target; one left by a killed\n"
        "process is removed by the next run that writes into that folder.\n\n"
        "Formats read: NIfTI-1 (`.nii`, `.nii.gz`), MetaImage (`.mha`), NRRD (`.nrrd`) and DICOM: a folder\n"
        "holding one series is read as one volume (`FOLDER::SERIES_UID` picks one series of several).\n"
        "Predictions are written as NIfTI on the input's grid.\n\n"
        "| command | bad input | message |\n|---|---|---|\n"
    )
    rows = []
    for e in CATALOGUE:
        msg = messages[e.id].replace("|", "\\|")
        rows.append(f"| `{e.command}` | {e.what} | `{msg}` |")
    return head + "\n".join(rows) + "\n"


def test_docs_table_matches_the_catalogue(tmp_path, model, capsys):
    for entry in CATALOGUE:
        if entry.id not in MESSAGES:
            MESSAGES[entry.id] = run_entry(entry, tmp_path / entry.id, model, capsys)
    text = render_docs(MESSAGES)
    if os.environ.get("FLARE_WRITE_DOCS"):
        DOCS.write_text(text)
    regenerate = "FLARE_WRITE_DOCS=1 python -m pytest tests/test_bad_inputs.py -k docs"
    assert DOCS.is_file() and DOCS.read_text() == text, f"docs/bad_inputs.md is out of date: {regenerate}"
    assert "docs/bad_inputs.md" in (REPO / "README.md").read_text()
