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
# # 03 · Stage 2: the multi-sequence model
#
# The run's model trained on what `study.stage2` names (STUDY.md stage 2 step 4; the ablations of
# Tables 5-6 change only this): labelled CT (manual, and pseudo-labelled CT with more than
# `study.stage2.ct_pseudo_min_slices` slices), stage 1's T1W pseudo-labels, the transferred labels of
# notebook 02, or on the phantom only the true MR labels (the oracle); a Mean Teacher also learns
# from the unlabelled MR named by `study.stage2.unlabelled`. For runs without stage 1 (Table 5's
# baseline and semi-supervised rows) this is the run's only model. The model of the last training
# iteration is the stage's product (no selection on the validation set, which is also the test).
# Everything goes to `outputs/<profile>/<run>/03_stage2/`.

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
from flarelib.study.flow import labelled_sources, single_sequence_note, stage_output
from flarelib.study.selftrain import MODEL_FILE, score_model, train_model, with_training
from flarelib.study.sources import stage2_data
from flarelib.viz.figures import training_curves_figure

params = load_stage_params(params_file, profile)
out = stage_dir(profile, run_id, "03_stage2")
out.mkdir(parents=True, exist_ok=True)
root = ensure_data(params)
s2 = params.study.stage2
stage1 = stage_output(profile, run_id, "01_stage1") if params.study.stage1 else None
labelled_from = labelled_sources(params)
transfer = (
    stage_output(profile, run_id, "02_transfer") / "transfer" if "transferred" in labelled_from else None
)
if single_sequence_note(params):
    print(single_sequence_note(params))
print(f"labelled: {labelled_from}; unlabelled: {list(s2.unlabelled)}; {s2.mode}")

# %% [markdown]
# ## The training data

# %%
data = stage2_data(params, stage1_dir=stage1, transfer_dir=transfer)
sources = pd.Series(data.record.get("mr_labelled", {}), dtype=object).value_counts().to_dict()
summary = {
    "labelled CT": len(data.record.get("ct", [])),
    "pseudo-labelled CT left out (too few slices)": len(data.record.get("ct_pseudo_left_out", [])),
    **{f"labelled MR ({k})": v for k, v in sources.items()},
    "unlabelled MR": len(data.unlabelled),
}
display(pd.Series(summary, name="volumes").to_frame())

# %% [markdown]
# ## Training (resumes its checkpoint; a finished one is reused)

# %%
result = train_model(with_training(params, s2.mode), "stage2", out / "model", data.labelled, data.unlabelled)
print(f"{result.iteration} iterations ({result.precision}), {result.seconds:.0f} s this session")
log = pd.read_csv(out / "model" / "train_log.csv")
curves = [c for c in ("loss_sup", "loss_con") if c in log]
fig = training_curves_figure(log, curves, out_png=out / "losses.png")
display(fig)
plt.close(fig)

# %% [markdown]
# ## The model on the MR validation set (mean over cases; notebook 05 has the per-organ table)

# %%
scores = score_model(params, out / MODEL_FILE, out)
display(pd.read_csv(out / "val_scores.csv").groupby("sequence")[["dsc", "nsd"]].mean().round(3))
metrics = {
    "model": MODEL_FILE,
    "iterations": result.iteration,
    "precision": result.precision,
    "labelled": len(data.labelled),
    "unlabelled": len(data.unlabelled),
    "sources": data.record,
    **scores,
}
atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
print(f"checkpoint: {display_path(out / MODEL_FILE)}")
{k: v for k, v in metrics.items() if k != "sources"}
