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
# # 05 · Evaluation: the run's final model on the labelled MR validation set
#
# The model the run reports (stage 3's `final_iteration`, else stage 2's) predicts every labelled
# MR validation volume through the whole per-case pipeline (as `flarelib predict`: reorient,
# resample, normalise, sliding window, post-processing, back to the input grid), scored
# FLARE-exactly (DSC, NSD with the per-organ tolerances; organs absent in both count 1). Table 4:
# per organ mean +- std over cases, the paper's values beside ours (x100).
# Everything goes to `outputs/<profile>/<run>/05_evaluate/`.

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
from flarelib.data import discover, select_cases
from flarelib.data.layout import load_case
from flarelib.datasets import ensure_data
from flarelib.evaluate.cases import predict_and_score
from flarelib.evaluate.summary import mean_scores, organ_summary, sequence_summary
from flarelib.infer.pipeline import CasePredictor, output_name
from flarelib.io import read_label
from flarelib.paths import atomic_write_text, display_path, stage_dir
from flarelib.study.flow import final_model
from flarelib.study.paper import TABLE4
from flarelib.study.selftrain import phantom_sequences
from flarelib.viz.figures import case_slices_figure
from flarelib.viz.widgets import SegmentationCase, segmentation_figure, segmentation_viewer

params = load_stage_params(params_file, profile)
out = stage_dir(profile, run_id, "05_evaluate")
out.mkdir(parents=True, exist_ok=True)
root = ensure_data(params)
model = final_model(profile, run_id, params)
val = select_cases(discover(params), "validation")
print(f"model {display_path(model)}; {len(val)} labelled MR validation cases")

# %%
predictor = CasePredictor.from_checkpoint(model, params=params)
scores = predict_and_score(predictor, val, out / "predictions", sequences=phantom_sequences(params, val))
scores.to_csv(out / "scores.csv", index=False)
organs = organ_summary(scores)
summary = mean_scores(scores)

# %% [markdown]
# ## Table 4: per organ, ours beside the paper's (DSC / NSD x100, mean +- std over cases)

# %%
paper = pd.DataFrame(TABLE4, index=["paper DSC", "paper NSD"]).T
table4 = (100 * organs[["dsc", "dsc_std", "nsd", "nsd_std"]]).join(paper)
table4["DSC diff"] = table4["dsc"] - table4["paper DSC"]
table4["NSD diff"] = table4["nsd"] - table4["paper NSD"]
display(table4.round(2))
print(
    f"mean DSC {100 * summary['mean_dsc']:.2f} +- {100 * summary['std_dsc']:.2f}, "
    f"NSD {100 * summary['mean_nsd']:.2f} +- {100 * summary['std_nsd']:.2f} over {summary['n_cases']} cases "
    "(paper: 81.60 +- 4.66, 89.83 +- 4.77)"
)
per_seq = sequence_summary(scores)
display((100 * per_seq[["dsc", "nsd"]]).round(1).assign(n=per_seq["n"]))

# %% [markdown]
# ## A few validation cases: ground truth (top of each pair) and prediction

# %%
spacing = params.preprocess.target_spacing_zyx
rows, cases = [], {}
for case in val[:3]:
    image, label = load_case(case)
    pred = read_label(out / "predictions" / output_name(case.image))
    rows.append((f"{case.case_id} truth", image.array, label.array, image.spacing_zyx, "MR"))
    rows.append((f"{case.case_id} prediction", image.array, pred.array, image.spacing_zyx, "MR"))
    cases[case.case_id] = SegmentationCase(image.array, label.array, pred.array, image.spacing_zyx)
fig = case_slices_figure(rows, n_slices=3, out_png=out / "overlays.png")
display(fig)
plt.close(fig)

# %% [markdown]
# ## Interactive: ground truth vs prediction on the same cases (open with `make lab`)
# Pick a case, a slice and the organs to show; the table and the legend give each organ's plain DSC
# over the whole volume (no FLARE rules: organs absent from both read "absent"). Its static twins
# follow it (each case at the middle of its labelled range, every organ).

# %%
display(segmentation_viewer(cases))
for name, c in cases.items():
    fig = segmentation_figure(c.image, c.truth, c.prediction, spacing_zyx=c.spacing_zyx, title=name)
    display(fig)
    plt.close(fig)

# %%
metrics = {
    "run": run_id,
    "model": str(display_path(model)),
    **summary,
    "per_organ": {
        o: {k: (None if v != v else float(v)) for k, v in r.items() if k != "n"}
        for o, r in organs.to_dict("index").items()
    },
    "per_sequence": {
        s: {"dsc": float(r["dsc"]), "nsd": float(r["nsd"])} for s, r in per_seq.to_dict("index").items()
    },
}
if params.study.export:  # the reported model, self-contained, with its model card
    from flarelib.study.export import export_model

    command = f"make reproduce PROFILE={profile} DATA={params.data.track} RUNS={params.run.name}"
    exported = export_model(model, params, metrics, command)
    metrics["exported"] = display_path(exported)
    print(f"exported {metrics['exported']} with its model card {display_path(exported.with_suffix('.md'))}")
atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
print(f"checkpoint of run {run_id}: {metrics['model']}")
