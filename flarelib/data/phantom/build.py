"""The whole phantom set: set-level draws (the plan), the jobs, the manifest, the truth, :func:`generate`.

:func:`generate` writes every subset where the params' layouts put it (:func:`.subsets.phantom_layouts`),
``dataset.json`` (:func:`flarelib.data.manifest.write_manifest`) and ``diagnostics/`` (:mod:`.truth`).
Set-level draws come from the streams ``case_rng(seed, subset, SERIAL, 0)``; cases run in any order,
in one process or several, with the same files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from flarelib.config import Params, SubsetLayout, params_to_dict
from flarelib.data.manifest import write_manifest
from flarelib.data.phantom.cases import ct_case, lld_case, single_mr_case
from flarelib.data.phantom.geometry import SERIAL, case_rng, count
from flarelib.data.phantom.marker import clear_marker
from flarelib.data.phantom.render import MR_SEQUENCES
from flarelib.data.phantom.sampler import BREATH_FACTORS
from flarelib.data.phantom.shapes import FAT_TISSUES, Tissue
from flarelib.data.phantom.subsets import LABELLED, MODALITY, SUBSETS, case_ids, phantom_layouts, top_folders
from flarelib.data.phantom.truth import DIAGNOSTICS, truth_path
from flarelib.errors import FlareInputError
from flarelib.labels import NUM_CLASSES, ORGANS, SEQUENCES
from flarelib.paths import atomic_write_text

__all__ = ["AMOS_SEQUENCES", "GenerateReport", "draw_plan", "generate"]

#: Mix of sequences drawn for the AMOS-like volumes.
AMOS_SEQUENCES = ("T1W", "T2W", "PVP", "DP", "IP", "OP", "T2W", "T1W")


@dataclasses.dataclass(frozen=True)
class GenerateReport:
    """What :func:`generate` wrote. ``seconds`` is wall time (not written to any file)."""

    out_dir: Path
    seconds: float
    counts: dict[str, int]  # volumes per subset
    n_files: int
    ct_slices: dict[str, int]  # CT case -> number of slices
    long_ct_cases: list[str]
    zflip_patients: list[str]
    misaligned: list[str]  # LLD case ids (<patient>_<tag>)
    organ_volume_ranges_ml: dict[str, tuple[float, float]]  # over the CT cases (true labels)

    def summary(self) -> str:
        lines = [f"phantom written to {self.out_dir} in {self.seconds:.1f} s: {self.n_files} files"]
        lines.append("  volumes: " + ", ".join(f"{k} {v}" for k, v in self.counts.items()))
        lines.append(
            f"  CT slices: {min(self.ct_slices.values(), default=0)}-"
            f"{max(self.ct_slices.values(), default=0)}; long CT: {', '.join(self.long_ct_cases) or '-'}"
        )
        lines.append(f"  z-flipped patients: {', '.join(self.zflip_patients) or '-'}")
        lines.append(f"  misaligned sequences: {', '.join(self.misaligned) or '-'}")
        return "\n".join(lines)


def draw_plan(params: Params) -> dict[str, Any]:
    """Set-level draws: long CTs, z-flipped patients, misaligned sequences, sequences of single MR."""
    ph, seed = params.phantom, params.run.seed
    plan: dict[str, Any] = {}
    for subset, n in (("ct_manual", ph.n_ct_manual), ("ct_pseudo", ph.n_ct_pseudo)):
        rng = case_rng(seed, subset, SERIAL, 0)
        k = count(ph.long_ct_fraction, n, minimum=1 if subset == "ct_pseudo" else 0)
        plan[f"long_{subset}"] = sorted(int(i) for i in rng.choice(n, size=k, replace=False)) if n else []
    n = ph.n_lld_patients
    rng = case_rng(seed, "lld_mmr", SERIAL, 0)
    k = count(ph.zflip_fraction, n, minimum=1 if n >= 3 else 0)
    plan["zflip"] = sorted(int(i) for i in rng.choice(n, size=k, replace=False)) if n else []
    candidates = [(i, s) for i in range(n) for s in MR_SEQUENCES if s not in ("T1W", "OP")]
    k = count(ph.misaligned_fraction, len(candidates), minimum=1 if n >= 2 else 0)
    picks = rng.choice(len(candidates), size=k, replace=False) if k else []
    mis: dict[int, set[str]] = {}
    for c in picks:
        i, s = candidates[int(c)]
        mis.setdefault(i, set()).update({"IP", "OP"} if s == "IP" else {s})
    plan["misaligned"] = {i: frozenset(v) for i, v in mis.items()}
    rng = case_rng(seed, "amos_mr", SERIAL, 0)
    plan["amos_seq"] = [str(s) for s in rng.choice(AMOS_SEQUENCES, size=ph.n_amos)] if ph.n_amos else []
    plan["val_seq"] = [MR_SEQUENCES[i % len(MR_SEQUENCES)] for i in range(ph.n_mr_val)]
    return plan


def _jobs(params: Params, plan: dict[str, Any]) -> list[tuple]:
    ph = params.phantom
    jobs: list[tuple] = []
    for subset, n in (("ct_manual", ph.n_ct_manual), ("ct_pseudo", ph.n_ct_pseudo)):
        jobs += [("ct", subset, i, i in plan[f"long_{subset}"]) for i in range(n)]
    jobs += [
        ("lld", "lld_mmr", i, i in plan["zflip"], plan["misaligned"].get(i, frozenset()))
        for i in range(ph.n_lld_patients)
    ]
    jobs += [("single", "amos_mr", i, plan["amos_seq"][i]) for i in range(ph.n_amos)]
    jobs += [("single", "mr_val", i, plan["val_seq"][i]) for i in range(ph.n_mr_val)]
    return jobs


def _run_job(params: Params, layouts: dict[str, SubsetLayout], out: Path, job: tuple) -> list[dict[str, Any]]:
    kind, layout = job[0], layouts[job[1]]
    if kind == "ct":
        return ct_case(params, layout, out, job[1], job[2], job[3])
    if kind == "lld":
        return lld_case(params, layout, out, job[2], job[3], job[4])
    return single_mr_case(params, layout, out, job[1], job[2], job[3])


def _job_volumes(job: tuple) -> int:
    return len(MR_SEQUENCES) if job[0] == "lld" else 1


#: What the manifest says of each labelled subset: (sequence, label source).
_MANIFEST_INFO: dict[str, tuple[str, str]] = {
    "ct_manual": ("portal-venous CT (procedural phantom)", "true labels of the procedural phantom"),
    "ct_pseudo": (
        "portal-venous CT (procedural phantom)",
        "simulated pseudo-labels: boundary erosion/dilation, a missed small organ, "
        "spurious islands (true labels in diagnostics/)",
    ),
    "mr_val": (
        "mixed: T1W, EAP, PVP, DP, T2W, DWI, IP, OP (per case)",
        "true labels of the procedural phantom",
    ),
}


def _manifest_datasets(
    records: list[dict[str, Any]], layouts: dict[str, SubsetLayout]
) -> dict[str, dict[str, Any]]:
    """The manifest's datasets: one per labelled subset whose layout names a ``dataset``."""
    identity = {str(i): i for i in range(NUM_CLASSES)}
    labels = {"0": "background", **{str(k): v for k, v in ORGANS.items()}}
    common = {
        "labels": labels,
        "label_to_flare": identity,
        "source_labels_mapped_to_background": [],
        "flare_not_annotated": [],
        "flare_not_annotated_names": [],
        "shape_order": "x, y, z (NIfTI i, j, k) as in ../shared/data/dataset.json; spacing_mm likewise",
    }
    out = {}
    for subset in SUBSETS:
        layout = layouts[subset]
        if subset not in LABELLED or layout.dataset is None:
            continue
        modality = MODALITY[subset]
        sequence, source = _MANIFEST_INFO[subset]
        cases = []
        for r in records:
            if r["subset"] != subset:
                continue
            c = {
                "id": r["case"],
                "image": r["image"],
                "label": r["label"],
                "shape": r["shape_zyx"][::-1],
                "spacing_mm": r["spacing_zyx"][::-1],
                "n_slices": r["n_slices"],
            }
            if modality == "CT":
                c["long_ct"] = r["long_ct"]
            else:
                c["sequence"] = r["sequence"]
                c["sequence_tag"] = SEQUENCES[r["sequence"]]
            cases.append(c)
        out[layout.dataset] = {
            "folder": top_folders({subset: layout})[0],
            "modality": modality,
            "sequence": sequence,
            "label_source": source,
            **common,
            "cases": cases,
        }
    return out


def _clear_previous(out: Path, layouts: dict[str, SubsetLayout]) -> None:
    """Remove an earlier phantom from ``out`` (the layout's top folders, ``diagnostics/`` and the
    manifest only), so that no stale case survives a regeneration with fewer cases. Refuses a folder
    holding a data set that is not one."""
    owned = (*top_folders(layouts), DIAGNOSTICS)
    present = [name for name in (*owned, "dataset.json") if (out / name).exists()]
    if not present:
        return
    try:
        ours = (
            json.loads(truth_path(out).read_text())
            .get("generated_by", "")
            .startswith("flarelib.data.phantom")
        )
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise FlareInputError(
            out,
            f"holds a data set that the phantom generator did not write ({', '.join(present)})",
            "choose an empty or new --out folder",
        )
    for name in owned:
        shutil.rmtree(out / name, ignore_errors=True)
    (out / "dataset.json").unlink(missing_ok=True)


def generate(
    params: Params, out_dir: str | os.PathLike, *, progress: bool = True, workers: int = 1
) -> GenerateReport:
    """Write the phantom data set for ``params`` (sizes: ``params.phantom``; seed: ``params.run.seed``).

    ``workers`` > 1 generates cases in that many processes; the files are the same either way.
    Returns a :class:`GenerateReport`. An earlier phantom in ``out_dir`` is replaced (its layout
    folders, ``dataset.json`` and ``diagnostics/``; nothing else is touched); a folder holding another
    data set is refused (:class:`FlareInputError`).
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    layouts = phantom_layouts(params)
    _clear_previous(out, layouts)
    clear_marker(out)  # a half-written phantom must not look complete (flarelib.datasets.ensure_data)
    out.mkdir(parents=True, exist_ok=True)
    ph = params.phantom
    for name in ("n_ct_manual", "n_ct_pseudo", "n_lld_patients", "n_amos", "n_mr_val"):
        if getattr(ph, name) < 0:
            raise FlareInputError(f"phantom.{name}", "must be >= 0", f"set phantom.{name} to a count")
    if ph.scale <= 0:
        raise FlareInputError("phantom.scale", "must be > 0", "use e.g. 1.0")
    drawn = draw_plan(params)
    jobs = _jobs(params, drawn)
    total = sum(_job_volumes(j) for j in jobs)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="phantom", unit="vol")
    results: dict[int, list[dict[str, Any]]] = {}
    try:
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futs = {pool.submit(_run_job, params, layouts, out, job): n for n, job in enumerate(jobs)}
                for fut in as_completed(futs):
                    results[futs[fut]] = fut.result()
                    if bar is not None:
                        bar.update(_job_volumes(jobs[futs[fut]]))
        else:
            for n, job in enumerate(jobs):
                results[n] = _run_job(params, layouts, out, job)
                if bar is not None:
                    bar.update(_job_volumes(job))
    finally:
        if bar is not None:
            bar.close()
    records = [r for n in range(len(jobs)) for r in results[n]]

    generated_by = f"flarelib.data.phantom (seed {params.run.seed}, profile {params.run.profile})"
    write_manifest(out / "dataset.json", _manifest_datasets(records, layouts), generated_by=generated_by)
    lld_ids = case_ids("lld_mmr", ph.n_lld_patients)
    zflip = [lld_ids[i] for i in drawn["zflip"]]
    misaligned = [r["case"] for r in records if r["subset"] == "lld_mmr" and r["motion"]["misaligned"]]
    truth = {
        "generated_by": generated_by,
        "seed": params.run.seed,
        "profile": params.run.profile,
        "phantom": params_to_dict(ph),
        "conventions": {
            "arrays": "(z, y, x); spacing_zyx mm; origin_xyz LPS mm; direction identity (LPS)",
            "motion": "world = R (body - center_mm) + center_mm + translation_mm + placement; "
            "R = Rz @ Ry @ Rx of rotation_deg_xyz; world_from_body is that 4x4",
            "body": "body frame = the anatomical frame of flarelib.data.phantom.anatomy scaled by body_scale",
            "breath_mm": "organs shift along +z by factor * breath_mm (liver/spleen 1, kidneys 0.6, ...)",
            "zflip": "image, true label and tissue arrays reversed along z, header unchanged",
            "labels": "true labels on the exact grid (and voxel order) of each written image",
        },
        "breath_factors": BREATH_FACTORS,
        "tissues": {int(t): t.name.lower() for t in Tissue},
        "fat_tissues": list(FAT_TISSUES),
        "lld_mmr": {"patients": lld_ids, "zflip_patients": zflip, "misaligned": misaligned},
        "cases": {f"{r['subset']}/{r['case']}": r for r in records},
    }
    atomic_write_text(truth_path(out), json.dumps(truth, indent=1) + "\n")

    ct = [r for r in records if r["modality"] == "CT"]
    ranges = {}
    for organ in ORGANS.values():
        vals = [r["organ_volumes_ml"][organ] for r in ct]
        if vals:
            ranges[organ] = (min(vals), max(vals))
    counts = {s: sum(r["subset"] == s for r in records) for s in SUBSETS}
    n_files = sum(1 for f in out.rglob("*") if f.is_file())
    return GenerateReport(
        out_dir=out,
        seconds=time.perf_counter() - t0,
        counts=counts,
        n_files=n_files,
        ct_slices={r["case"]: r["n_slices"] for r in ct},
        long_ct_cases=[r["case"] for r in ct if r["long_ct"]],
        zflip_patients=zflip,
        misaligned=misaligned,
        organ_volume_ranges_ml=ranges,
    )
