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
# # 02 · Stage 2a: T1W -> multi-sequence label transfer with the kidney-DSC filter
#
# STUDY.md "Stage 2" 1-3: every LLD-MMR-like patient's EAP, PVP, DP and IP are registered rigidly
# to its T1W by body masks (OP reuses IP's transform), T2W and DWI on intensities to the registered
# EAP; the T1W pseudo-label of stage 1 gives a coarse kidney per side on each sequence, and its DSC
# with the T1W kidney decides whether the sequence inherits the whole T1W pseudo-label (EAP/PVP/DP:
# one kidney > 0.85; DWI/IP/T2W, OP with IP: both > 0.8 and one > 0.85). Rejected sequences stay
# unlabelled. On the phantom every decision is also scored against the truth, which the paper
# could not do. Everything goes to `outputs/<profile>/<run>/02_transfer/`.

# %% tags=["parameters"]
params_file = "params/runs/default.yaml"  # the runner passes the resolved params.yaml of this stage
run_id = "default"
profile = "smoke"

# %%
# %matplotlib inline
import json

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from flarelib.config import load_stage_params
from flarelib.datasets import ensure_data
from flarelib.paths import atomic_write_text, display_path, stage_dir
from flarelib.study.flow import stage_output
from flarelib.study.transfer_stage import example_patient, run_transfer
from flarelib.viz.pseudolabel_figures import kidney_filter_figure
from flarelib.viz.widgets import (
    kidney_filter_viewer,
    registration_figure,
    registration_viewer,
    transfer_registration_pairs,
)

params = load_stage_params(params_file, profile)
out = stage_dir(profile, run_id, "02_transfer")
out.mkdir(parents=True, exist_ok=True)
root = ensure_data(params)
stage1 = stage_output(profile, run_id, "01_stage1")
print(f"T1W pseudo-labels from {display_path(stage1)}")

# %% [markdown]
# ## Transfer and filter every patient
# Patients run in parallel processes (`transfer.workers`); the table has one row per sequence:
# registration, kidney DSC per side, decision and reason.

# %%
metrics = run_transfer(params, stage1, out)
table = pd.read_csv(out / "transfer" / "transfer.csv")
cols = [c for c in ("patient", "sequence", "decision", "dsc_right", "dsc_left", "reason") if c in table]
display(table[cols].round(3))
print(metrics.get("report", ""))

# %% [markdown]
# ## Fig. 4: the kidney-DSC filter on one patient
# Each sequence on the T1W grid after registration; T1W kidney pseudo-label as contours, the coarse
# kidney found by Otsu inside its dilated region filled; title: DSC per side and the decision.

# %%
example = example_patient(params, stage1)
fig = kidney_filter_figure(
    example, spacing_zyx=params.preprocess.target_spacing_zyx, out_png=out / "fig4.png"
)
display(fig)
plt.close(fig)

# %% [markdown]
# ## Interactive: the filter and the registrations of that patient (open with `make lab`)
# The kidney-filter viewer browses Fig. 4's patient slice by slice (Fig. 4 is its static twin; the
# other patients' results above hold records only, no views). The registration viewer shows each of
# its sequences on the T1W grid before registration (headers alone) and after, as a checkerboard or
# an overlay (T1W magenta, sequence green); its static twins follow it (checkerboard, middle slice).

# %%
display(kidney_filter_viewer(example, spacing_zyx=params.preprocess.target_spacing_zyx))
fixed, pairs = transfer_registration_pairs(example)
display(registration_viewer(fixed.array, pairs, spacing_zyx=fixed.spacing_zyx))
for name, (before, after) in pairs.items():
    fig = registration_figure(fixed.array, before, after, spacing_zyx=fixed.spacing_zyx, title=name)
    display(fig)
    plt.close(fig)

# %%
metrics.pop("report", None)
atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
metrics
