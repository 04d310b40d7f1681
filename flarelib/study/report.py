"""The study report's tables: our runs' ``metrics.json`` files with the paper's numbers beside them.

Every table is a :class:`pandas.DataFrame` in 0..100 (DSC, NSD x100), one row per run or organ, with
``ours``, ``paper`` and ``diff = ours - paper`` columns; a run that has not been evaluated yet has
NaN in its ``ours`` columns and the verdicts say so. Sources, for a profile and data track:

* Tables 5 and 6: ``<run>/05_evaluate/metrics.json`` (the run's final model on the labelled MR
  validation set; mean over cases of each case's mean over its organs).
* Table 4: the same file of ``proposed`` (``per_organ``).
* Fig. 6: ``self_training``'s (else ``proposed``'s) ``03_stage2`` (iteration 0) and ``04_stage3``
  (iterations 1..N) validation scores.
* Phantom-only diagnostics: ``01_stage1`` (pseudo-labels against the true MR labels), ``02_transfer``
  (kidney filter precision/recall against the true transfer accuracy), ``oracle_mr`` (the ceiling).
* Efficiency: ``proposed/06_efficiency/metrics.json`` when the run has that stage.
* Stage 1's translation: ``proposed``'s ``01_stage1/translation.csv`` and ``metrics.json`` (the
  fake MR against the truth on the phantom, against the labelled real MR's organ brightness on
  real data).

Run folders are ``outputs/<profile>/<name>`` on the phantom and ``<name>_<track>`` on other tracks
(:func:`flarelib.notebook_runner.run_id_for`).
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pandas as pd

from flarelib.errors import FlareInputError
from flarelib.evaluate.translation import summarise
from flarelib.paths import outputs_root
from flarelib.study import paper
from flarelib.study.flow import SAME_AS, STAGES, read_metrics, stage_output

__all__ = [
    "EXTRA_RUNS",
    "efficiency_table",
    "fig6_table",
    "phantom_diagnostics",
    "real_track_table",
    "real_track_verdict",
    "report_run_id",
    "run_checkpoints",
    "run_id",
    "run_scores",
    "stage_status",
    "table4",
    "table5",
    "table5_verdict",
    "table6",
    "table6_orderings",
    "translation_evidence",
]

#: Runs beyond the paper's tables: the ceiling (phantom) and the intensity-randomised baselines
#: (GIN on both tracks; synth on the real track).
EXTRA_RUNS = ("oracle_mr", "baseline_randaug", "baseline_synth")
FIG6_RUN = "self_training"  # proposed's stage 3 continued to 5 iterations (params/runs/self_training.yaml)


def run_id(name: str, track: str) -> str:
    """The output folder name of run ``name`` on data ``track``."""
    return name if track == "phantom" else f"{name}_{track}"


def report_run_id(track: str) -> str:
    """The report's own folder: one per data track, so the tracks' reports never overwrite each other."""
    return run_id("report", track)


def _metrics(profile: str, rid: str, stage: str) -> dict | None:
    try:
        return read_metrics(profile, rid, stage)
    except FlareInputError:
        return None


def _pct(value) -> float:
    return float("nan") if value is None else 100.0 * float(value)


def run_scores(profile: str, track: str, names: list[str] | None = None) -> pd.DataFrame:
    """Per run (index: run name): ``dsc, dsc_std, nsd, nsd_std`` (x100) and ``n_cases`` from its
    ``05_evaluate`` metrics; runs not evaluated yet are left out."""
    names = names or [*dict.fromkeys([*paper.TABLE5, *paper.TABLE6, *EXTRA_RUNS])]
    rows = {}
    for name in names:
        m = _metrics(profile, run_id(name, track), "05_evaluate")
        if m is None:
            continue
        rows[name] = {
            "dsc": _pct(m.get("mean_dsc")),
            "dsc_std": _pct(m.get("std_dsc")),
            "nsd": _pct(m.get("mean_nsd")),
            "nsd_std": _pct(m.get("std_nsd")),
            "n_cases": m.get("n_cases"),
        }
    cols = ["dsc", "dsc_std", "nsd", "nsd_std", "n_cases"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols)


def _beside_paper(scores: pd.DataFrame, reference: dict[str, tuple[float, float]]) -> pd.DataFrame:
    rows = []
    for name, (p_dsc, p_nsd) in reference.items():
        ours = scores.loc[name] if name in scores.index else None
        dsc = float(ours["dsc"]) if ours is not None else math.nan
        nsd = float(ours["nsd"]) if ours is not None else math.nan
        rows.append(
            {
                "run": name,
                "DSC": dsc,
                "paper DSC": p_dsc,
                "DSC diff": dsc - p_dsc,
                "NSD": nsd,
                "paper NSD": p_nsd,
                "NSD diff": nsd - p_nsd,
            }
        )
    return pd.DataFrame(rows).set_index("run")


def _track_runs(profile: str, track: str) -> list[tuple[str, Path]]:
    """``(run name, folder)`` of every run folder of ``track`` under ``outputs/<profile>`` (the
    report's own and ``_shared`` left out), names without the track suffix, sorted."""
    root = outputs_root() / profile
    suffix = "" if track == "phantom" else f"_{track}"
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "report"))):
        name = folder.name
        if suffix and not name.endswith(suffix):
            continue
        if not suffix and any(name.endswith(f"_{t}") for t in ("real", "flare24")):
            continue
        out.append((name.removesuffix(suffix) if suffix else name, folder))
    return out


def run_checkpoints(profile: str, track: str) -> pd.DataFrame:
    """Per evaluated run of the track: the checkpoint its ``05_evaluate`` scored (``model``,
    relative to the outputs folder), the one ``flarelib predict --model`` takes."""
    rows = {}
    for name, folder in _track_runs(profile, track):
        m = _metrics(profile, folder.name, "05_evaluate")
        if m and m.get("model"):
            rows[name] = {"checkpoint": m["model"]}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["checkpoint"])


REAL_ORGANS = ("liver", "right kidney", "left kidney", "spleen")


def real_track_table(profile: str) -> pd.DataFrame:
    """The real track's runs (rows, :data:`flarelib.study.paper.REAL_TRACK_RUNS` order) with DSC
    per annotated organ and their mean (x100, mean over the dev cases), each beside the published
    anchor it is read against (``anchor``, ``anchor DSC``, ``diff``); then the anchors' own rows."""
    rows = []
    for name, anchor in paper.REAL_TRACK_RUNS.items():
        m = _metrics(profile, run_id(name, "real"), "05_evaluate")
        per = (m or {}).get("per_organ", {})
        row = {"row": name}
        for organ in REAL_ORGANS:
            row[organ] = _pct(per.get(organ, {}).get("dsc")) if m else math.nan
        row["mean DSC"] = _pct(m.get("mean_dsc")) if m else math.nan
        row["mean NSD"] = _pct(m.get("mean_nsd")) if m else math.nan
        a_dsc = paper.REAL_TRACK_ANCHORS[anchor][0]
        row.update({"anchor": anchor, "anchor DSC": a_dsc, "diff": row["mean DSC"] - a_dsc})
        rows.append(row)
    for anchor, (a_dsc, what) in paper.REAL_TRACK_ANCHORS.items():
        rows.append({"row": f"published: {anchor}", "mean DSC": a_dsc, "anchor": what})
    return pd.DataFrame(rows).set_index("row")


def real_track_verdict(t: pd.DataFrame) -> str:
    """The issue's targets on the real track in words: proposed - baseline >= 15 mean Dice points,
    proposed >= 75."""
    b, p = t.loc["baseline", "mean DSC"], t.loc["proposed", "mean DSC"]
    if math.isnan(b) or math.isnan(p):
        return "real track not decided: baseline or proposed not evaluated yet"
    gain = p - b
    ok_gain = "meets" if gain >= 15 else "does NOT meet"
    ok_abs = "meets" if p >= 75 else "does NOT meet"
    return (
        f"proposed {p:.1f} vs baseline {b:.1f} mean Dice: {gain:+.1f} points ({ok_gain} the +15 "
        f"target); proposed {ok_abs} the 75 target"
    )


def real_track_limits(profile: str, t: pd.DataFrame) -> list[str]:
    """What limits ``proposed`` on the real track, read from the stages' own measurements: one
    line per link of the chain (translation, stage-1 model, stage-2 model, the anatomy filter,
    self-training) and the best row of ``t`` (:func:`real_track_table`). Empty when nothing has
    been measured yet."""
    lines: list[str] = []
    rid = run_id("proposed", "real")
    s1 = _metrics(profile, rid, "01_stage1") or {}
    fake, ct = s1.get("translation_fake_organ_error"), s1.get("translation_ct_organ_error")
    if fake is not None and ct is not None:
        verdict = "worse than" if fake > ct else "better than"
        lines.append(
            f"translation: the fake T2W's organs are {fake:.1f} from the real T2W's mean brightness on "
            f"0..255, {verdict} the CT as it is ({ct:.1f}); organ pairs in the real order "
            f"{s1.get('translation_fake_order_fraction', math.nan):.2f} "
            f"(CT {s1.get('translation_ct_order_fraction', math.nan):.2f})"
        )
    if s1.get("val_mean_dsc") is not None:
        lines.append(
            f"stage 1: the model trained on the fakes scores {_pct(s1['val_mean_dsc']):.1f} mean Dice on the "
            "dev volumes; its T2W pseudo-labels are what stage 2 learns from"
        )
    s2 = _metrics(profile, rid, "03_stage2") or {}
    if s2.get("val_mean_dsc") is not None:
        lines.append(f"stage 2 (CT + stage-1 pseudo-labels): {_pct(s2['val_mean_dsc']):.1f} mean Dice")
    s3 = _metrics(profile, rid, "04_stage3") or {}
    iterations = s3.get("iterations") or []
    if iterations:
        kept = ", ".join(f"{it['kept']}/{it['kept'] + it['dropped']}" for it in iterations)
        dsc = ", ".join(f"{_pct(it.get('val_mean_dsc')):.1f}" for it in iterations)
        lines.append(
            f"stage 3: the anatomy filter kept {kept} pseudo-labels in iterations 1-{len(iterations)}; "
            f"mean Dice after each: {dsc}"
        )
    runs = t.loc[[r for r in paper.REAL_TRACK_RUNS if r in t.index], "mean DSC"].dropna()
    if len(runs):
        best = runs.idxmax()
        tail = "" if best == "proposed" else f" (proposed {runs.get('proposed', math.nan):.1f})"
        lines.append(f"best row: {best} {runs[best]:.1f} mean Dice{tail}")
    return lines


def table5(scores: pd.DataFrame) -> pd.DataFrame:
    """Table 5 (baseline, semi_all_mr, proposed): our DSC/NSD beside the paper's."""
    return _beside_paper(scores, paper.TABLE5)


def table5_verdict(t5: pd.DataFrame) -> str:
    """Whether Baseline < Semi (all MR) < Proposed holds on our DSC, in words with the numbers."""
    dsc = t5["DSC"]
    if dsc.isna().any():
        missing = ", ".join(dsc.index[dsc.isna()])
        return f"Table 5 ordering not decided: not evaluated yet: {missing}"
    b, s, p = (float(dsc[n]) for n in paper.TABLE5)
    holds = b < s < p
    word = "holds" if holds else "does NOT hold"
    return (
        f"Baseline < Semi < Proposed {word} on our DSC: {b:.2f}, {s:.2f}, {p:.2f} "
        f"(paper 72.75 < 73.14 < 81.60; ours: semi - baseline {s - b:+.2f}, proposed - semi {p - s:+.2f})"
    )


def table6(scores: pd.DataFrame) -> pd.DataFrame:
    """Table 6 in the paper's order, with a ``stage`` column (stage-2 rows, then stage-3 rows)."""
    t = _beside_paper(scores, paper.TABLE6)
    t.insert(0, "stage", ["stage 2"] * 4 + ["stage 3"] * 3)
    return t


def table6_orderings(t6: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Each adjacent pair of Table 6 (the paper's rows rise monotonically but for one tie): the
    paper's DSC step, ours, and whether ours has the same sign (a step under 0.05 counts as a tie
    in the paper and matches any sign of ours). Returns the table and a one-line summary."""
    rows = []
    names = list(t6.index)
    for a, b in itertools.pairwise(names):
        paper_step = float(t6.loc[b, "paper DSC"] - t6.loc[a, "paper DSC"])
        our_step = float(t6.loc[b, "DSC"] - t6.loc[a, "DSC"])
        if math.isnan(our_step):
            match = None
        elif abs(paper_step) < 0.05:
            match = True
        else:
            match = (paper_step > 0) == (our_step > 0)
        rows.append(
            {"from": a, "to": b, "paper step": paper_step, "our step": our_step, "same direction": match}
        )
    table = pd.DataFrame(rows)
    decided = table["same direction"].dropna()
    n_match = int(sum(bool(x) for x in decided))
    summary = f"{n_match} of {len(decided)} adjacent orderings of Table 6 match the paper's direction"
    if len(decided) < len(table):
        summary += f" ({len(table) - len(decided)} not decided: runs not evaluated yet)"
    if len(decided):
        gap = (table["our step"] - table["paper step"]).abs().dropna()
        summary += f"; steps differ from the paper's by {gap.mean():.2f} DSC points on average"
    return table, summary


def table4(profile: str, track: str, name: str = "proposed") -> pd.DataFrame:
    """Table 4: per organ ``DSC, DSC std, NSD, NSD std`` (x100) of run ``name`` beside the paper's."""
    m = _metrics(profile, run_id(name, track), "05_evaluate")
    per_organ = (m or {}).get("per_organ", {})
    rows = []
    for organ, (p_dsc, p_nsd) in paper.TABLE4.items():
        r = per_organ.get(organ, {})
        dsc, nsd = _pct(r.get("dsc")), _pct(r.get("nsd"))
        rows.append(
            {
                "organ": organ,
                "DSC": dsc,
                "DSC std": _pct(r.get("dsc_std")),
                "paper DSC": p_dsc,
                "DSC diff": dsc - p_dsc,
                "NSD": nsd,
                "NSD std": _pct(r.get("nsd_std")),
                "paper NSD": p_nsd,
                "NSD diff": nsd - p_nsd,
            }
        )
    return pd.DataFrame(rows).set_index("organ")


def fig6_table(profile: str, track: str, name: str | None = None) -> pd.DataFrame:
    """Fig. 6: per self-training iteration (0 = stage 2's model) the validation ``dsc, nsd`` (x100)
    and kept/dropped pseudo-labels, of run ``name`` (default: ``self_training``, the 5 recorded
    iterations, else ``proposed``'s); empty when stage 3 has not run."""
    names = [name] if name else [FIG6_RUN, "proposed"]
    s2 = s3 = None
    for n in names:
        rid = run_id(n, track)
        s2, s3 = _metrics(profile, rid, "03_stage2"), _metrics(profile, rid, "04_stage3")
        if s3 is not None:
            break
    if s3 is None:
        return pd.DataFrame(columns=["iteration", "dsc", "nsd", "kept", "dropped"])
    rows = []
    if s2 is not None:
        dsc, nsd = _pct(s2.get("val_mean_dsc")), _pct(s2.get("val_mean_nsd"))
        rows.append({"iteration": 0, "dsc": dsc, "nsd": nsd})
    for it in s3.get("iterations", []):
        rows.append(
            {
                "iteration": it["iteration"],
                "dsc": _pct(it.get("val_mean_dsc")),
                "nsd": _pct(it.get("val_mean_nsd")),
                "kept": it.get("kept"),
                "dropped": it.get("dropped"),
            }
        )
    t = pd.DataFrame(rows)
    t.attrs["final_iteration"] = s3.get("final_iteration")
    return t


def fig6_verdict(fig6: pd.DataFrame) -> str:
    """Where our validation DSC peaks among iterations 1..N, against the paper's peak at 3."""
    its = fig6[fig6["iteration"] > 0].dropna(subset=["dsc"])
    if its.empty:
        return "Fig. 6 not measured yet (the proposed run's stage 3 has not run)"
    best = its.loc[its["dsc"].idxmax()]
    return (
        f"our validation DSC peaks at iteration {int(best['iteration'])} ({best['dsc']:.2f}); "
        f"the paper's peaks at iteration {paper.FIG6_PEAK_ITERATION}; the run reports iteration "
        f"{fig6.attrs.get('final_iteration')} (fixed in params, not chosen on validation scores)"
    )


def phantom_diagnostics(profile: str, track: str, scores: pd.DataFrame) -> pd.DataFrame:
    """What only the phantom's truth can measure, as ``quantity, value, reference`` rows: stage 1's
    pseudo-label DSC against the true MR labels, the kidney filter's precision and recall against
    the true transfer accuracy (STUDY.md targets 0.9 / 0.7), and each run as a fraction of the
    oracle ceiling."""
    rid = run_id("proposed", track)
    rows = []
    s1 = _metrics(profile, rid, "01_stage1") or {}
    if "pseudo_label_true_dsc" in s1:
        rows.append(("stage 1: T1W pseudo-label DSC vs true MR labels", s1["pseudo_label_true_dsc"], ""))
    if "val_mean_dsc" in s1:
        rows.append(("stage 1: validation DSC (labelled MR)", s1["val_mean_dsc"], ""))
    for key in (
        "translation_organ_mae",
        "translation_order_fraction",
        "translation_refined_organ_mae",
        "translation_refined_order_fraction",
    ):
        if key in s1:
            ref = "target <= 20" if key.endswith("mae") else "target >= 0.90"
            rows.append((f"stage 1: {key.removeprefix('translation_').replace('_', ' ')}", s1[key], ref))
    tr = _metrics(profile, rid, "02_transfer") or {}
    for key, ref in (("precision", "target >= 0.9"), ("recall", "target >= 0.7")):
        if tr.get(key) is not None:
            rows.append((f"kidney filter {key} (truly aligned among accepted / aligned)", tr[key], ref))
    for key in ("true_dsc_accepted", "true_dsc_rejected"):
        if tr.get(key) is not None:
            rows.append((f"transferred labels: {key.replace('_', ' ')}", tr[key], ""))
    if "oracle_mr" in scores.index and not math.isnan(scores.loc["oracle_mr", "dsc"]):
        ceiling = float(scores.loc["oracle_mr", "dsc"])
        rows.append(("oracle_mr DSC (supervised on the true MR labels: the ceiling)", ceiling / 100, ""))
        for name in scores.index:
            if name != "oracle_mr" and ceiling > 0:
                fraction = float(scores.loc[name, "dsc"]) / ceiling
                rows.append((f"{name}: fraction of the ceiling", fraction, ""))
    return pd.DataFrame(rows, columns=["quantity", "value", "reference"])


def translation_evidence(profile: str, track: str, name: str = "proposed") -> tuple[pd.DataFrame, str]:
    """What stage 1's CycleGAN makes of CT, as run ``name``'s ``01_stage1`` measured it, and one
    line that reads it.

    Phantom: per input (``fake``: the translated CT; ``ct``: the CT as it is; ``refined``: the fake
    after stage 1's last refinement round, where ``cyclegan.refine_rounds``) the organ intensity
    error, the fraction of region pairs in the true order, SSIM in the body, and the mean error per
    region (fake minus true MR of the same anatomy, 0..255). Real data: per organ annotated in the
    labelled MR the mean brightness (0..255) of the fake, of the CT as it is and of the real MR.
    Empty with a line saying why when the stage has not measured it."""
    rid = run_id(name, track)
    try:
        path = stage_output(profile, rid, "01_stage1") / "translation.csv"
    except FlareInputError:
        return pd.DataFrame(), f"not measured: {rid} has no finished stage 1"
    if not path.is_file():
        return pd.DataFrame(), (
            f"not measured: {rid}'s stage 1 predates the file {path.name} (`flarelib reproduce` "
            "reruns it, since its notebook changed)"
        )
    s1 = _metrics(profile, rid, "01_stage1") or {}
    raw = pd.read_csv(path)
    pseudo = s1.get("pseudo_label_true_dsc")
    val = s1.get("val_mean_dsc")
    tail = f"; the stage-1 model's validation DSC {_pct(val):.1f}" if val is not None else ""
    if track == "phantom":
        table = summarise(raw)
        fake, ct = table.loc["fake"], table.loc["ct"]
        line = (
            f"fake {raw['sequence'].iloc[0]} vs its truth: organ error {fake['organ_mae']:.1f} on 0..255 "
            f"(the CT as it is {ct['organ_mae']:.1f}; target <= 20), pairs in the true order "
            f"{fake['order_fraction']:.2f} (CT {ct['order_fraction']:.2f}; target >= 0.90)"
        )
        if "refined" in table.index:
            ref = table.loc["refined"]
            line += (
                f"; refined organ by organ from stage 1's pseudo-labels: {ref['organ_mae']:.1f}, "
                f"pairs {ref['order_fraction']:.2f}"
            )
        if pseudo is not None:
            line += f"; stage-1 pseudo-labels vs the true MR labels: DSC {_pct(pseudo):.1f} (target 70)"
        return table, line + tail
    table = raw.set_index("organ")
    line = (
        f"organ brightness of the fake MR vs the labelled real MR: error "
        f"{s1.get('translation_fake_organ_error', math.nan):.1f} on 0..255 (the CT as it is "
        f"{s1.get('translation_ct_organ_error', math.nan):.1f}), pairs in the real order "
        f"{s1.get('translation_fake_order_fraction', math.nan):.2f} "
        f"(CT {s1.get('translation_ct_order_fraction', math.nan):.2f})"
    )
    return table, line + tail


def efficiency_table(profile: str, track: str, name: str = "proposed") -> pd.DataFrame:
    """Table 8 averages of run ``name`` (from its ``06_efficiency`` metrics) beside the paper's;
    empty when the stage has not run."""
    m = _metrics(profile, run_id(name, track), "06_efficiency")
    if m is None:
        return pd.DataFrame(columns=["ours", "paper"])
    from flarelib.evaluate.efficiency import PAPER_TABLE8

    ours = m.get("table8", m.get("averages", m))
    rows = {k: {"ours": ours.get(k), "paper": v} for k, v in PAPER_TABLE8.items()}
    t = pd.DataFrame.from_dict(rows, orient="index")
    t.attrs["machine"] = m.get("machine")
    return t


def stage_status(profile: str, track: str, stale: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Runs (rows) x stages (columns): ``done``, ``shared`` (reused from an identical run), ``stale``
    (finished, but with other params or another notebook than today's: :func:`stale_stages`, or
    ``stale`` when the caller has it already), ``failed`` (an executed notebook with the error
    kept), ``started`` or empty; every run folder of the track."""
    stale = stale_stages(profile, track) if stale is None else stale
    rows = {
        name: {
            stage: "stale" if stage in stale.get(name, ()) else _status(folder / stage, stage)
            for stage in STAGES
        }
        for name, folder in _track_runs(profile, track)
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(STAGES)).fillna("")


def stale_stages(profile: str, track: str) -> dict[str, list[str]]:
    """Per run folder of ``track`` (name without the track suffix): its finished stages whose DONE
    record does not match the run's params file and stage notebook as they are now (made before a
    change; ``flarelib reproduce`` reruns them): neither its params hash nor its stage key
    (:func:`flarelib.study.flow.stage_key`, which leaves out what the stage does not depend on)
    is the current one. A report reading them mixes results of different settings, so it names
    them. Runs without a params file are left out."""
    from flarelib.config import compose_params, params_hash
    from flarelib.notebook_runner import find_notebook, notebook_hash
    from flarelib.paths import project_root
    from flarelib.study.flow import stage_key, stages_of

    out: dict[str, list[str]] = {}
    nb_hashes: dict[str, str] = {}
    for name, folder in _track_runs(profile, track):
        run_file = project_root() / "params" / "runs" / f"{name}.yaml"
        if not run_file.is_file():
            continue
        params = compose_params(run_file, profile, track)
        phash = params_hash(params)
        stale = []
        for stage in stages_of(params):
            record = _done_record(folder / stage)
            if record is None:
                continue  # not finished, or a record without hashes: nothing to compare
            if stage not in nb_hashes:
                nb_hashes[stage] = notebook_hash(find_notebook(stage))
            same_params = record["params_hash"] == phash or record.get("stage_key") == stage_key(
                params, stage
            )
            if not same_params or record.get("notebook_hash", nb_hashes[stage]) != nb_hashes[stage]:
                stale.append(stage)
        if stale:
            out[name] = stale
    return out


def _done_record(folder: Path) -> dict | None:
    try:
        record = json.loads((folder / "DONE").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("params_hash") else None


def stale_note(stale: dict[str, list[str]]) -> str:
    """One line for the report naming the stale stages, or an empty string."""
    if not stale:
        return ""
    runs = "; ".join(f"{name} ({', '.join(stages)})" for name, stages in stale.items())
    return (
        f"Stale: {runs}: finished with other params or notebooks than the current ones; their "
        "numbers below are those of the earlier settings (`make reproduce` reruns them)"
    )


def _status(folder: Path, stage: str) -> str:
    if not folder.is_dir():
        return ""
    if (folder / SAME_AS).is_file():
        return "shared"
    if (folder / "DONE").is_file():
        return "done"
    if (folder / f"{stage}.failed.ipynb").is_file():
        return "failed"
    return "started"
