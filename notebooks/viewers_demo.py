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
# # Viewers: registration, the kidney-DSC filter, segmentations
#
# The three interactive viewers of `flarelib.viz.widgets` on small synthetic arrays (ellipsoid
# organs, made in a blink by `synthetic_examples`; not the phantom). Open with `make lab`; every
# control redraws the picture (matplotlib, rendered to PNG in the kernel). Arrays are (z, y, x) as
# stored, spacings in mm. Each viewer has a static figure twin for headless runs and the HTML
# reports: `registration_figure`, `kidney_filter_figure`, `segmentation_figure`.
#
# On a study's outputs: `registration_pairs(t1w, volumes, registrations)` gives the before/after
# arrays of a patient's sequences on the T1W grid (`register_sequences`); `kidney_filter_viewer`
# takes the results of `transfer_patient(..., keep_views=True)` (as notebook 02's
# `example_patient`); `segmentation_viewer` takes `{case: (image, truth, prediction)}`, e.g. the
# labelled MR validation cases and notebook 05's predictions.

# %%
from flarelib.viz.widgets import (
    kidney_filter_viewer,
    registration_viewer,
    segmentation_viewer,
    synthetic_examples,
)

examples = synthetic_examples(shape=(16, 64, 64), seed=0)

# %% [markdown]
# ## Registration
# A T1W-like fixed image against an EAP-like and a T2W-like moving image, before registration
# (shifted by a few voxels) and after. Checkerboard: tiles alternate fixed and moving, so a
# misalignment breaks the edges at tile borders; overlay: fixed magenta, moving green.

# %%
fixed, pairs = examples["registration"]
registration_viewer(fixed, pairs)

# %% [markdown]
# ## The kidney-DSC filter (Fig. 4)
# Per patient: each sequence's kidney DSC and decision, and every sequence on the T1W grid with the
# T1W kidney pseudo-label (cyan contours) and the coarse kidney that Otsu found in it (filled).
# `demo_02`'s T2W is shifted sideways, so its kidneys miss and it is rejected.

# %%
kidney_filter_viewer(examples["kidney"])

# %% [markdown]
# ## Segmentation: ground truth vs prediction
# Pick organs to show; the table and the legend give each organ's DSC over the whole volume.
# `case_a`'s prediction misses the gallbladder, leaks the spleen sideways and shrinks the liver;
# `case_b`'s equals the truth.

# %%
segmentation_viewer(examples["segmentation"])
