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
# # 04 · Stage 3: anatomy-aware filter and iterative self-training
#
# STUDY.md "Stage 3": the previous model predicts every MR volume (LLD-MMR-like and AMOS-like); the
# anatomy-aware module keeps the predictions whose organs exist (eq. 6; adrenals: present with an
# anterior-posterior extent), are in one piece (eq. 7) and whose esophagus + stomach + duodenum form
# one piece (eq. 8); a new Mean Teacher trains on them + labelled CT; repeat (`study.stage3`). Each
# iteration is scored on the MR validation set (Fig. 6). Iterations are shared between runs that
# differ only in how many they ask for. The run reports `study.stage3.final_iteration` (0: the last),
# fixed in its params file. Everything goes to `outputs/<profile>/<run>/04_stage3/`.

# %% tags=["parameters"]
params_file = "params/runs/default.yaml"  # the runner passes the resolved params.yaml of this stage
run_id = "default"
profile = "smoke"

# %%
# %matplotlib inline
import json
import os

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from flarelib.config import load_stage_params
from flarelib.datasets import ensure_data
from flarelib.paths import atomic_write_text, stage_dir
from flarelib.study.flow import read_metrics, stage_output
from flarelib.study.selftrain import run_iterations
from flarelib.viz.figures import iterations_figure

params = load_stage_params(params_file, profile)
out = stage_dir(profile, run_id, "04_stage3")
out.mkdir(parents=True, exist_ok=True)
root = ensure_data(params)
s3 = params.study.stage3
stage2 = stage_output(profile, run_id, "03_stage2")
stage2_model = stage2 / read_metrics(profile, run_id, "03_stage2")["model"]
print(f"{s3.iterations} iteration(s), anatomy filter {'on' if s3.anatomy_filter else 'off'}, {s3.mode}")

# %%
shared, records = run_iterations(params, profile, stage2_model)
table = pd.DataFrame(
    [
        {k: r[k] for k in ("iteration", "kept", "dropped", "val_mean_dsc", "val_mean_nsd", "seconds")}
        for r in records
    ]
)
stage2_metrics = read_metrics(profile, run_id, "03_stage2")
start = {
    "iteration": 0,
    "val_mean_dsc": stage2_metrics["val_mean_dsc"],
    "val_mean_nsd": stage2_metrics["val_mean_nsd"],
}
display(pd.concat([pd.DataFrame([start]), table], ignore_index=True).round(3))

# %% [markdown]
# ## What the anatomy filter dropped (constraints violated, by organ)

# %%
rows = [
    {
        "iteration": r["iteration"],
        "case": case,
        "violations": "; ".join(f"({x['constraint']}) {x['message']}" for x in v["violations"]),
    }
    for r in records
    for case, v in r.get("anatomy", {}).items()
    if not v.get("passed", True)
]
display(pd.DataFrame(rows) if rows else "every prediction passed (or the filter is off)")

# %% [markdown]
# ## Fig. 6: validation DSC and NSD per iteration (iteration 0 = stage 2's model)

# %%
fig = iterations_figure(
    pd.concat([pd.DataFrame([start]), table], ignore_index=True), out_png=out / "fig6.png"
)
display(fig)
plt.close(fig)

# %%
final = s3.final_iteration or s3.iterations
model = shared / f"iter_{final}" / records[final - 1]["model"]
metrics = {
    "model": os.path.relpath(model, out),
    "final_iteration": final,
    "shared": os.path.relpath(shared, out),
    "iterations": [{k: v for k, v in r.items() if k not in ("anatomy", "dropped_cases")} for r in records],
}
atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
print(f"checkpoint (iteration {final}): {os.path.relpath(model, out.parents[3])}")
metrics["iterations"][-1]
