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
# # 01 · Stage 1: CT -> T1W translation and T1W pseudo-labels
#
# The paper's first stage (STUDY.md "Stage 1"): a CycleGAN (3-D in the paper; 2-D in the quick
# profile) learns to turn labelled CT into T1W-like MR from unpaired volumes; every labelled CT,
# translated, keeps its CT label and becomes a labelled "fake T1W" volume; a Mean Teacher U-Net
# trains on the fake T1W (labelled) and the real T1W (unlabelled); its teacher then predicts the
# real T1W volumes, giving the T1W pseudo-labels that stage 2 transfers to the other sequences. On
# the real-data track the target sequence is T2W (`cyclegan.target_sequence`) and stage 2 learns
# from these pseudo-labels directly. With `cyclegan.align_domains` the CycleGAN's CT and MR are
# first registered to references (STUDY.md's translation registration); with
# `cyclegan.fake_background: zero` the CT's air is cleared and the fake is 0 outside the body;
# with `cyclegan.ct_input: inverted` the generator sees the CT inverted inside its body (fat
# bright, enhanced organs dark, as in T1W); `train.stage1_intensity_aug` randomises the fakes'
# intensities during the Mean Teacher training (the quick profile: GIN); `cyclegan.refine_rounds`
# moves the fakes' organs to the brightness the real MR shows inside the stage's own pseudo-labels
# and trains again (the quick profile: one round).
# Everything it writes goes to `outputs/<profile>/<run>/01_stage1/`.

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
from flarelib.data.phantom import load_truth, truth_case, truth_label_path
from flarelib.datasets import ensure_data
from flarelib.evaluate.cases import per_case_table, predict_and_score, score_file
from flarelib.infer.pipeline import CasePredictor, predict_paths
from flarelib.labels import ORGANS, SHORT_NAMES
from flarelib.paths import atomic_write_text, stage_dir
from flarelib.study.refine_rounds import best_model, round_params, stage1_organ_targets
from flarelib.train.fake_mr import load_translator, translate_to_fake_mr
from flarelib.train.stages import load_train_volume, run_stage
from flarelib.train.translation_check import phantom_translation_table, summarise
from flarelib.viz.figures import case_slices_figure, training_curves_figure

params = load_stage_params(params_file, profile)
out = stage_dir(profile, run_id, "01_stage1")
out.mkdir(parents=True, exist_ok=True)
root = ensure_data(params)
seq = params.cyclegan.target_sequence
cases = discover(params)
ct_cases = select_cases(cases, "labelled")
mr_cases = select_cases(cases, "unlabelled", sequence=seq)
val_cases = select_cases(cases, "validation")
print(f"{len(ct_cases)} labelled CT, {len(mr_cases)} unlabelled real {seq}, {len(val_cases)} MR validation")

# %% [markdown]
# ## CycleGAN: CT -> real MR of the target sequence
# Both domains at the training spacing, CT windowed (level 40, width 400) and MR scaled to 0..255.
# The run resumes its checkpoint; a finished one is reused as it is.

# %%
gan = run_stage(params, "cyclegan", out / "cyclegan", progress=False)
print(f"CycleGAN: {gan.iteration} iterations, {gan.seconds:.0f} s this session")
gan_log = pd.read_csv(out / "cyclegan" / "train_log.csv")
fig = training_curves_figure(
    gan_log, ["gan", "cycle", "identity", "loss_d"], out_png=out / "cyclegan_losses.png"
)
display(fig)
plt.close(fig)

# %% [markdown]
# ## What the translation does
# One labelled CT, its fake T1W and a real T1W volume, axial slices through the labelled range
# (CT label over the CT and the fake; the real volume has none).

# %%
generator, gan_record = load_translator(out / "cyclegan" / "checkpoint.pt", params)
spacing = params.preprocess.target_spacing_zyx
ct_example = load_train_volume(ct_cases[0], spacing, "ct255", params.preprocess)
(fake_example,) = translate_to_fake_mr(
    generator,
    [ct_example],
    params.cyclegan.patch_zyx,
    overlap=params.cyclegan.translate_overlap,
    blend=params.cyclegan.translate_blend,
    background=params.cyclegan.fake_background,
    ct_input=params.cyclegan.ct_input,
)
real_example = load_train_volume(mr_cases[0], spacing, "mr255", params.preprocess)
rows = [
    (f"CT {ct_cases[0].case_id}", ct_example.image, ct_example.label, spacing, "MR"),
    (f"fake {seq} (z-scored)", fake_example.image, ct_example.label, spacing, "MR"),
    (f"real {seq} {mr_cases[0].case_id}", real_example.image, None, spacing, "MR"),
]
fig = case_slices_figure(rows, n_slices=3, out_png=out / "translation.png")
display(fig)
plt.close(fig)

# %% [markdown]
# On the phantom, the fake against the truth: every labelled CT's anatomy is also rendered as the
# target sequence (`diagnostics/translation/`, never read by the method). Organ intensity error on
# 0..255 (9 large organs), the fraction of organ pairs (+ fat, muscle) in the true brightness order,
# SSIM inside the body; `ct` is the CT as it is, the figure a translation has to beat
# (`flarelib translation-check` prints the same). On real data, where no MR of the CT's anatomy
# exists: each organ's mean brightness (0..255) in the fake (4 CT cases) and in the labelled real MR
# validation volumes, the mean error and the fraction of organ pairs in the real order.

# %%
translation = {}
if params.data.track == "phantom":
    from flarelib.errors import FlareInputError

    try:
        t_table = phantom_translation_table(params, generator, root=root)
    except FlareInputError as exc:
        print(f"no translation truth: {exc}")
    else:
        atomic_write_text(out / "translation.csv", t_table.to_csv(index=False))  # the report reads it
        t_summary = summarise(t_table)[["organ_mae", "order_fraction", "ssim_body"]]
        display(t_summary.round(3))
        translation = {f"translation_{k}": float(v) for k, v in t_summary.loc["fake"].items()}
else:  # real data: the fake's organ brightness against the labelled real MR (measures only)
    from flarelib.train.translation_check import real_translation_table

    t_table, t_figures = real_translation_table(params, generator, max_ct=4)
    atomic_write_text(out / "translation.csv", t_table.to_csv(index_label="organ"))  # the report reads it
    display(t_table.round(1))
    print(", ".join(f"{k} {v:.3g}" for k, v in t_figures.items()))
    translation = {f"translation_{k}": float(v) for k, v in t_figures.items()}

# %% [markdown]
# ## Mean Teacher on fake MR (labelled) + real MR (unlabelled)
# The teacher is validated on the labelled MR validation cases every `train.validate_every`
# iterations (sliding window, no mirroring); the best teacher is kept as `model_best.pt`.

# %%
mt = first_round = run_stage(
    params, "stage1", out / "stage1", cyclegan=out / "cyclegan" / "checkpoint.pt", progress=False
)
print(f"stage-1 Mean Teacher: {mt.iteration} iterations ({mt.precision}), {mt.seconds:.0f} s this session")
mt_log = pd.read_csv(out / "stage1" / "train_log.csv")
fig = training_curves_figure(mt_log, ["loss_sup", "loss_con"], out_png=out / "stage1_losses.png")
display(fig)
plt.close(fig)
val_log_path = out / "stage1" / "val_log.csv"
if val_log_path.is_file():
    display(pd.read_csv(val_log_path).round(3))

# %% [markdown]
# ## T1W pseudo-labels: the stage's product
# The teacher predicts every real volume of the target sequence; stage 2 transfers these labels
# to the patient's other sequences. With `cyclegan.refine_rounds` (a deviation; the paper has one
# round) these are round 1's, and the rounds below refine them.

# %%
rounds = params.cyclegan.refine_rounds
last_round = rounds + 1
mr_images = [c.image for c in mr_cases]


def pseudo_label_dir(r):
    return out / ("pseudo_labels" if r == last_round else f"pseudo_labels_round{r}")


model_file = best_model(out / "stage1")
predictor = CasePredictor.from_checkpoint(model_file, params=params)
results = predict_paths(predictor, mr_images, pseudo_label_dir(1), progress=False)
failed = [r for r in results if not r.ok]
print(f"{len(results) - len(failed)} pseudo-labels written to {pseudo_label_dir(1)}; {len(failed)} failed")
round_results = {1: results}

# %% [markdown]
# ## Refinement rounds (`cyclegan.refine_rounds`)
# The CycleGAN maps intensities by local context and gives CT's enhanced organs one brightness that
# the target MR splits per organ. Each round measures each organ's brightness in the real MR inside
# the previous round's pseudo-labels (the method's own predictions; eroded masks, medians), moves the
# organs of every fake to it, and trains the Mean Teacher on these fakes, warm-started from the
# previous model (`cyclegan.refine_iterations`); its teacher pseudo-labels the real MR again
# (`flarelib.study.refine_rounds`). On the phantom the refined fakes are scored against the truth
# like the CycleGAN's.

# %%
round_rows = []
refined_translation = {}
for r in range(2, last_round + 1):
    if any(not x.ok for x in results):
        raise RuntimeError(f"round {r - 1}: a pseudo-label failed; the refinement needs every one")
    targets = stage1_organ_targets(params, mr_cases, [x.output for x in results])
    mt = run_stage(
        round_params(params, model_file),
        "stage1",
        out / f"stage1_round{r}",
        cyclegan=out / "cyclegan" / "checkpoint.pt",
        organ_targets=targets,
        progress=False,
    )
    model_file = best_model(out / f"stage1_round{r}")
    predictor = CasePredictor.from_checkpoint(model_file, params=params)
    results = predict_paths(predictor, mr_images, pseudo_label_dir(r), progress=False)
    round_results[r] = results
    row = {"round": r, "iterations": mt.iteration, "seconds": round(mt.seconds)}
    row.update({f"target_{ORGANS[k]}": round(v, 1) for k, v in targets.items()})
    round_rows.append(row)
    if params.data.track == "phantom" and translation:
        r_table = phantom_translation_table(params, generator, root=root, organ_targets=targets)
        r_summary = summarise(r_table)[["organ_mae", "order_fraction", "ssim_body"]]
        refined = r_summary.loc["refined"]
        refined_translation = {f"translation_refined_{k}": float(v) for k, v in refined.items()}
        row.update(refined_translation)
        if r == last_round:
            atomic_write_text(out / "translation.csv", r_table.to_csv(index=False))
if round_rows:
    display(pd.DataFrame(round_rows).set_index("round").T)
else:
    print("cyclegan.refine_rounds: 0 (the paper's single round)")

# %% [markdown]
# ## The stage-1 model on the MR validation set
# The last round's model, whole per-case pipeline (as `flarelib predict` runs it), FLARE-exact DSC
# and NSD per case; the phantom's validation set has one case per sequence, so this shows which
# sequences a T1W model already covers.

# %%
sequences = {}
if params.data.track == "phantom":
    truth = load_truth(root)
    sequences = {c.case_id: truth_case(truth, c.subset, c.case_id)["sequence"] for c in val_cases}
scores = predict_and_score(predictor, val_cases, out / "val_predictions", sequences=sequences)
scores.to_csv(out / "val_scores.csv", index=False)
table = per_case_table(scores)
display(table.round(3))

# %% [markdown]
# On the phantom, how good are the pseudo-labels? Scored against the true labels of those very
# volumes (the diagnostics folder, which the method never reads): what stage 2 would inherit, which
# the paper could not measure; per round and organ.

# %%
pseudo_dsc, pseudo_rounds = None, {}
if params.data.track == "phantom":
    per_round = {}
    for r, res in round_results.items():
        rows = []
        for case, result in zip(mr_cases, res, strict=True):
            if result.ok:
                truth_file = truth_label_path(root, case.subset, case.case_id)
                rows += score_file(result.output, truth_file, case=case.case_id, sequence=case.sequence)
        frame = pd.DataFrame(rows)
        pseudo_rounds[r] = float(per_case_table(frame).iloc[-1]["dsc"])
        organ_dsc = frame.groupby("organ")["dsc"].mean()
        per_round[f"round {r}"] = {SHORT_NAMES[int(o)]: v for o, v in organ_dsc.items()}
        per_round[f"round {r}"]["mean"] = pseudo_rounds[r]
    pseudo_dsc = pseudo_rounds[last_round]
    display(pd.DataFrame(per_round).T.round(3))

# %%
metrics = {
    "target_sequence": seq,
    "cyclegan_iterations": gan.iteration,
    "stage1_iterations": first_round.iteration,
    "refine_iterations": [row["iterations"] for row in round_rows],
    "stage1_model": str(model_file.relative_to(out)),
    "refine_rounds": rounds,
    "val_mean_dsc": float(table.iloc[-1]["dsc"]),
    "val_mean_nsd": float(table.iloc[-1]["nsd"]),
    "val_per_case": table.iloc[:-1].to_dict("records"),
    "pseudo_labels": sum(x.ok for x in results),
    "pseudo_label_true_dsc": pseudo_dsc,
    "pseudo_label_true_dsc_rounds": {str(k): v for k, v in pseudo_rounds.items()},
    **translation,
    **refined_translation,
}
atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
metrics
