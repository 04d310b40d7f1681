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
# # 06 · Efficiency: time and memory per case of the run's final model (Tables 7 and 8)
#
# FLARE's efficiency measurement (STUDY.md "Evaluation", `flarelib/evaluate/efficiency.py`): each
# case runs as a fresh process, `python -m flarelib.infer.pipeline CASE OUT --model CKPT` (the whole
# `flarelib predict`: interpreter start, model load, reading, preprocessing, sliding window,
# post-processing, writing), timed from start to exit; every 0.1 s the sampler records the GPU's
# used memory (NVML, the whole device, as FLARE), the RAM (`efficiency.ram_scope`: the predict
# process tree, or the machine's used memory) and the tree's CPU use. Max and AUC (sum x 0.1 s) per
# case. The model is the one the run reports (stage 3's `final_iteration`, else stage 2's); the cases
# are `efficiency.cases` labelled MR validation volumes spread evenly over their image sizes.
#
# Read the numbers with the machine: the paper's are an RTX 4090 on FLARE24 MR volumes (Table 7:
# 8 cases, Table 8: averages over 110); ours are this machine on this run's data (the phantom's
# volumes are far smaller than AMOS's). **Without CUDA, or without `pynvml` (`pip install
# nvidia-ml-py`), nothing samples a GPU: the GPU columns are NaN, and the running time is a CPU
# time, not comparable with the paper's GPU time.** The paper's "AUC CPU Time" (262.62 next to
# 96.89 % over 11.8 s) matches no definition we know; ours is sum(CPU % samples) x 0.1 s.
# Everything goes to `outputs/<profile>/<run>/06_efficiency/`.

# %% tags=["parameters"]
params_file = "params/runs/default.yaml"  # the runner passes the resolved params.yaml of this stage
run_id = "default"
profile = "smoke"

# %%
# %matplotlib inline
import json

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from flarelib.config import dump_params, load_stage_params
from flarelib.data import discover, select_cases
from flarelib.datasets import ensure_data
from flarelib.evaluate.efficiency import (
    PAPER_TABLE8,
    averages,
    image_size_xyz,
    measure_cases,
    nvml_available,
    paper_table7_frame,
    spread_by_size,
    table7_frame,
    table8_frame,
    write_csv,
)
from flarelib.paths import atomic_write_text, display_path, stage_dir
from flarelib.repro import describe_machine
from flarelib.study.flow import final_model
from flarelib.viz.figures import size_curve_figure

params = load_stage_params(params_file, profile)
out = stage_dir(profile, run_id, "06_efficiency")
out.mkdir(parents=True, exist_ok=True)
root = ensure_data(params)
model = final_model(profile, run_id, params)
val = select_cases(discover(params), "validation")
sizes = [image_size_xyz(c.image) for c in val]
cases = spread_by_size(val, sizes, params.efficiency.cases)
machine = describe_machine()  # through NVML / nvidia-smi only: no CUDA context of ours on the device
gpu_sampled = nvml_available(0)
ran_on = machine["gpu"] if machine["gpu"] and machine["torch_cuda"] else "CPU"  # predict's --device auto
print(f"model {display_path(model)}")
print(f"{len(cases)} of {len(val)} labelled MR validation cases: {', '.join(c.case_id for c in cases)}")
print(
    f"machine: {machine['cpu']}, {machine['cores_usable']}/{machine['cores']} cores, "
    f"{machine['ram_gib']} GiB RAM, GPU {machine['gpu'] or 'none'}; "
    f"torch {machine['torch']} (CUDA {machine['torch_cuda'] or 'none'})"
)
print(
    f"predict runs on: {ran_on}; GPU memory sampled: {'yes (NVML)' if gpu_sampled else 'no: GPU columns NaN'}"
)

# %%
# the predict processes read the run's resolved params, as the notebook does
predict_params = dump_params(params, out / "predict_params.yaml")
results = measure_cases(
    [c.image for c in cases],
    out / "predictions",
    model,
    predict_params,
    ram_scope=params.efficiency.ram_scope,
)
write_csv(results, out / "efficiency.csv")
failed = [r for r in results if r.returncode != 0]
if failed:
    raise RuntimeError(
        f"{len(failed)} case(s) failed: "
        + "; ".join(f"{r.case} (exit {r.returncode}): {r.output_tail[-500:]}" for r in failed)
    )

# %% [markdown]
# ## Table 7: per case, in increasing image size, beside the paper's case nearest in voxels
#
# The paper's columns are its Table 7 (RTX 4090: time and GPU only). Ours add the RAM and CPU
# figures the paper reports only as averages (Table 8).

# %%
table7 = table7_frame(results)
display(table7.round(1))
display(Markdown("The paper's Table 7 (RTX 4090):"))
paper7 = paper_table7_frame()
display(paper7)

# %% [markdown]
# ## Table 8: averages over the measured cases, beside the paper's (110 validation cases)

# %%
table8 = table8_frame(results)
display(table8.round(2))
if not gpu_sampled:
    display(Markdown("No GPU was sampled on this machine: the GPU rows are NaN."))

# %% [markdown]
# ## Running time against image size (ours on this machine, the paper's on an RTX 4090)

# %%
fig = size_curve_figure(
    {
        f"ours ({ran_on})": (table7["voxels"].astype(float), table7["time (s)"]),
        "paper (RTX 4090)": (paper7["voxels"].astype(float), paper7["time (s)"]),
    },
    title="per-case running time (fresh process)",
    out_png=out / "time_vs_voxels.png",
)
display(fig)
plt.close(fig)


# %%
def _json(d):
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in d.items()}  # NaN -> null


order = {case: i for i, case in enumerate(table7.index)}  # Table 7's order: increasing image size
metrics = {
    "run": run_id,
    "model": str(display_path(model)),
    "ran_on": ran_on,
    "ram_scope": params.efficiency.ram_scope,
    "gpu_sampled": gpu_sampled,
    "averages": _json(averages(results)),
    "paper_averages": dict(PAPER_TABLE8),
    "cases": [_json(r.row()) for r in sorted(results, key=lambda r: order[r.case])],
    "machine": machine,
}
atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
print(json.dumps(metrics["averages"], indent=2))
