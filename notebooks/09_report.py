# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: flare-study
#     language: python
#     name: flare-study
# ---

# %% [markdown]
# # 09 · The report: our measured numbers beside the paper's
#
# Every number here is read from the runs' `metrics.json` files under `outputs/<profile>/` (the
# profile and data track of this report); nothing is typed in but the paper's own values
# (`flarelib.study.paper`, from STUDY.md). DSC and NSD are x100, FLARE-exact, on the labelled MR
# validation set. A run not evaluated yet shows NaN and the verdicts say so. `flarelib reproduce`
# reruns this notebook after every study; `flarelib report` renders every executed notebook to HTML.
#
# Read the numbers against the profile: the smoke profile trains for seconds and checks plumbing
# only; the quick profile is the study on the phantom on a laptop CPU; the full profile is the
# paper's scale.

# %% tags=["parameters"]
params_file = "params/runs/default.yaml"  # the runner passes the resolved params.yaml of this stage
run_id = "report"
profile = "smoke"

# %%
# %matplotlib inline
import json

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from flarelib.config import load_stage_params
from flarelib.paths import atomic_write_text, stage_dir
from flarelib.study import report
from flarelib.viz.figures import iterations_figure

params = load_stage_params(params_file, profile)
track = params.data.track
out = stage_dir(profile, run_id, "09_report")
out.mkdir(parents=True, exist_ok=True)
scores = report.run_scores(profile, track)
print(f"profile {profile}, data track {track}: {len(scores)} run(s) evaluated: {', '.join(scores.index)}")

# %% [markdown]
# ## Which stages have run (done, shared with an identical run, failed, started)

# %%
stale = report.stale_stages(profile, track)  # finished with other params or notebooks than today's
display(report.stage_status(profile, track, stale))
stale_line = report.stale_note(stale)
if stale_line:
    display(Markdown(f"**{stale_line}**"))

# %% [markdown]
# ## The real track: BTCV CT -> CHAOS T2-SPIR (runs of `make reproduce DATA=real`)
# Our five runs, Dice per annotated organ on the CHAOS dev volumes (x100), each beside the published
# row it is read against, then the published rows themselves (SIFA, IEEE TMI 2020; DAR-UNet).

# %%
verdict_real = None
if track == "real":
    from flarelib.study.paper import REAL_TRACK_PROTOCOL

    real = report.real_track_table(profile)
    display(real.round(1))
    verdict_real = report.real_track_verdict(real)
    display(Markdown(f"**{verdict_real}**\n\n{REAL_TRACK_PROTOCOL}"))
    limits_real = report.real_track_limits(profile, real)  # measured, stage by stage
    if "does NOT" in verdict_real and limits_real:
        verdict_real += "\n\nWhat limits it, as each stage measured it:\n\n" + "\n".join(
            f"- {line}" for line in limits_real
        )
        display(Markdown(verdict_real.split("\n\n", 1)[1]))
else:
    print(f"data track {track}: the real track's table is in report_real (make reproduce DATA=real)")

# %% [markdown]
# ## Stage 1: what the CycleGAN makes of CT (every later stage learns from it)
# On the phantom, the fake MR against the true MR rendering of the same CT anatomy (mean over the
# labelled CT; `err_*`: fake minus true per region, 0..255); on real data, each organ's mean
# brightness in the fake, in the CT as it is and in the labelled real MR (measured, never trained on).

# %%
translation, verdict_translation = report.translation_evidence(profile, track)
if len(translation):
    display(translation.round(3 if track == "phantom" else 1))
display(Markdown(f"**{verdict_translation}**"))

# %% [markdown]
# ## Table 4: the proposed method per organ (mean and std over validation cases)

# %%
t4 = report.table4(profile, track)
display(t4.round(2))

# %% [markdown]
# ## Table 5: baseline (CT labels only), semi-supervised on all MR (no translation), proposed

# %%
t5 = report.table5(scores)
display(t5.round(2))
verdict5 = report.table5_verdict(t5)
display(Markdown(f"**{verdict5}**"))

# %% [markdown]
# ## Table 6: the ablations of stage 2 and stage 3, in the paper's order
#
# The paper's rows rise from each row to the next (semi_wo_amos ties semi). We count how many of
# the six adjacent steps go the same way for us.

# %%
if track != "phantom":
    print(f"data track {track}: Table 6's ablations run on the phantom only (the paper's stage-2 data)")
t6 = report.table6(scores)
display(t6.round(2))
orderings, verdict6 = report.table6_orderings(t6)
display(orderings.round(2))
display(Markdown(f"**{verdict6}**"))

# %% [markdown]
# ## Fig. 6: validation scores per self-training iteration (0 = stage 2's model)

# %%
f6 = report.fig6_table(profile, track)
verdict_fig6 = report.fig6_verdict(f6)
if len(f6):
    display(f6.round(2))
    fig = iterations_figure(
        f6.assign(val_mean_dsc=f6["dsc"] / 100, val_mean_nsd=f6["nsd"] / 100), out_png=out / "fig6.png"
    )
    display(fig)
    plt.close(fig)
display(Markdown(f"**{verdict_fig6}**"))

# %% [markdown]
# ## What only the phantom can tell (its hidden truth; never read by the method)

# %%
diag = report.phantom_diagnostics(profile, track, scores)
if track != "phantom":
    print("real data: no hidden truth, no diagnostics")
elif diag.empty:
    print("no phantom diagnostics yet (stages 01/02 of the proposed run, oracle_mr)")
else:
    display(diag.round(3))

# %% [markdown]
# ## Efficiency (Table 8 averages; the paper: one RTX 4090)

# %%
eff = report.efficiency_table(profile, track)
if eff.empty:
    print("efficiency not measured (study.efficiency of the proposed run)")
else:
    print(f"machine: {eff.attrs.get('machine')}")
    display(eff)

# %% [markdown]
# ## Every evaluated run (including the phantom-only oracle and baseline_randaug), and its checkpoint
# `flarelib predict IN OUT --model <checkpoint>` segments new volumes with it (paths relative to
# the outputs folder).

# %%
display(scores.round(2))
checkpoints = report.run_checkpoints(profile, track)
display(checkpoints)

# %%
metrics = {
    "profile": profile,
    "data_track": track,
    "runs": json.loads(scores.to_json(orient="index")),
    "table5_verdict": verdict5,
    "table6_verdict": verdict6,
    "table6_orderings": json.loads(orderings.to_json(orient="records")),
    "fig6_verdict": verdict_fig6,
    "real_track_verdict": verdict_real,
    "translation_verdict": verdict_translation,
    "stale": stale,
    "checkpoints": checkpoints["checkpoint"].to_dict(),
}
atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def block(frame: pd.DataFrame) -> str:
    return "```\n" + (frame.round(2).to_string() if len(frame) else "not measured") + "\n```"


sections = [f"# Study report: profile {profile}, data {track}"]
if stale_line:
    sections += [stale_line]
if track == "real":
    sections += ["## Real track (BTCV CT -> CHAOS T2)\n\n" + block(real), verdict_real]
sections += [
    "## Stage 1: the translation\n\n" + block(translation),
    verdict_translation,
    "## Table 5\n\n" + block(t5),
    verdict5,
    "## Table 6\n\n" + block(t6),
    verdict6,
    "## Table 4 (proposed)\n\n" + block(t4),
    "## Fig. 6\n\n" + block(f6),
    verdict_fig6,
]
if track == "phantom":
    sections += ["## What only the phantom can tell (its hidden truth)\n\n" + block(diag)]
sections += [
    "## Efficiency (Table 8 averages)\n\n" + block(eff),
    "## Every evaluated run\n\n" + block(scores),
    "## Checkpoints\n\n" + block(checkpoints),
]
atomic_write_text(out / "summary.md", "\n\n".join(sections) + "\n")
print(verdict5)
print(verdict6)
