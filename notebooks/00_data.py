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
# # 00 · Data: what the study trains and scores on
#
# This stage makes the run's data available (the phantom is generated here when the data track is
# `phantom` and it is missing or stale), checks every file before any compute (`flarelib check-data`),
# and shows a few slices with labels. Everything it writes goes to
# `outputs/<profile>/<run>/00_data/`.

# %% tags=["parameters"]
params_file = "params/runs/default.yaml"  # the runner passes the resolved params.yaml of this stage
run_id = "default"
profile = "smoke"

# %%
# %matplotlib inline
import json

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from flarelib.config import load_stage_params
from flarelib.data.check import check_dataset
from flarelib.data.layout import discover, load_case
from flarelib.datasets import ensure_data
from flarelib.io import reorient_to_lps
from flarelib.paths import atomic_write_text, stage_dir
from flarelib.viz.figures import case_slices_figure

params = load_stage_params(params_file, profile)
out = stage_dir(profile, run_id, "00_data")
out.mkdir(parents=True, exist_ok=True)
root = ensure_data(params)
print(f"data track: {params.data.track}\ndata root:  {root}")

# %% [markdown]
# ## Dataset check
# Every image readable, image/label grids identical, label ids known to the dataset's map, every
# LLD-MMR patient with all required sequences. Organs a dataset does not annotate are listed: they
# are ignored by the loss and the metrics, never treated as background.

# %%
report = check_dataset(params, progress=False)
display(Markdown(report.to_markdown()))
if not report.ok:
    raise RuntimeError("the dataset check found problems:\n" + "\n".join(report.problems))

# %% [markdown]
# ## A few labelled cases
# Axial slices spread over the labelled z-range, labels as FLARE ids (legend below the grid), every
# volume reoriented to LPS first: patient's right on the left of the picture, anterior at the top.

# %%
cases = discover(params)
shown = []
for subset, items in cases.items():
    labelled = [c for c in items if c.label is not None]
    for case in labelled[:2]:
        image, label = (reorient_to_lps(v)[0] for v in load_case(case))
        shown.append((f"{subset}/{case.case_id}", image.array, label.array, image.spacing_zyx, case.modality))
fig = case_slices_figure(shown, n_slices=3, out_png=out / "labelled_slices.png")
display(fig)
plt.close(fig)

# %% [markdown]
# ## The phantom's patients, all sequences
# Shown when the data track is the phantom: one patient's CT and its 8 MR sequences with the true
# label contours (from the diagnostics folder, which the method never reads).

# %%
if params.data.track == "phantom":
    from flarelib.viz.montage import phantom_montage

    fig = phantom_montage(root, out_png=out / "phantom_montage.png")
    display(fig)
    plt.close(fig)

# %%
metrics = {
    "data_track": params.data.track,
    "subsets": {row["subset"]: int(row["cases"]) for row in report.summary.to_dict("records")},
    "problems": len(report.problems),
}
atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
metrics
