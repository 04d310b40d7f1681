"""Stage 1's labelled data (STUDY.md "Stage 1"): labelled CT translated into fake MR by the CycleGAN.

The run's CycleGAN generator ``g_ab`` (CT -> ``cyclegan.target_sequence``, T1W in the paper) turns
each labelled CT volume, windowed to 0..255 at the training spacing, into a fake MR volume by
Gaussian-blended overlapping tiles (:func:`flarelib.train.cyclegan.translate_volume`). The fake
volume keeps the CT's grid and label, is z-scored like a real MR volume, and trains the stage-1
MR segmentation network beside the unlabelled real MR of that sequence.

Arrays are (z, y, x); spacings in mm.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flarelib.config import Params
from flarelib.errors import FlareInputError
from flarelib.train.sampling import FAKE_MR, TrainVolume


def load_translator(
    checkpoint: str | Path,
    params: Params,
    device: str | torch.device = "cpu",
    *,
    expect_hash: str | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The CT -> MR generator ``g_ab`` of a CycleGAN checkpoint (the loop's ``checkpoint.pt``), built
    from ``params.cyclegan`` (2-D when ``unet.configuration`` is 2d) and put in eval mode on
    ``device``, and the checkpoint's record (``path``, ``iteration``, ``params_hash``).

    ``expect_hash``: the training hash of the CycleGAN these params describe; a checkpoint trained
    with other params (another schedule, say) is used, with a warning that says so.
    """
    from flarelib.models.configuration import configuration_of
    from flarelib.models.cyclegan import generator_from_params
    from flarelib.train.checkpoint import load_checkpoint

    path = Path(checkpoint)
    if not path.is_file():
        raise FlareInputError(
            path,
            "no CycleGAN checkpoint here",
            "train it first: flarelib train --stage cyclegan (same params), or pass --cyclegan CKPT",
        )
    ckpt = load_checkpoint(path)
    modules = ckpt.get("modules", {})
    if "g_ab" not in modules:
        raise FlareInputError(
            path,
            f"not a CycleGAN checkpoint (it holds {sorted(modules) or 'no networks'})",
            "pass the checkpoint.pt of the cyclegan stage",
        )
    generator = generator_from_params(params.cyclegan, configuration=configuration_of(params))
    try:
        generator.load_state_dict(modules["g_ab"])
    except RuntimeError as exc:
        raise FlareInputError(
            path,
            f"its generator does not match params.cyclegan ({str(exc).splitlines()[0]})",
            "use the params the CycleGAN was trained with",
        ) from exc
    record = {"path": str(path), "iteration": ckpt.get("iteration"), "params_hash": ckpt.get("params_hash")}
    if expect_hash is not None and record["params_hash"] != expect_hash:
        warnings.warn(
            f"{path}: this CycleGAN was trained with other params (hash {record['params_hash']}) than "
            f"the run's cyclegan section describes ({expect_hash}); translating with it as it is",
            stacklevel=2,
        )
    return generator.to(device).eval(), record


#: Above this floor (0..255 of the [-160, 240] HU window, about -113 HU) a CT's darkest voxel is
#: no air but tissue: the field of view lies inside the body, and the fixed threshold applies.
_AIR_FLOOR_MAX = 30.0


def ct_body_mask(ct255: np.ndarray, threshold: float = 2.0) -> np.ndarray:
    """The body of a windowed CT (z, y, x; 0..255, window [-160, 240] HU): voxels more than
    ``threshold`` above the volume's air (about 3 HU above it, so fat counts as body and air does
    not), the largest 26-connected component, holes filled slice by slice (lungs, bowel gas).

    The air is the window's floor (0) for CT stored in full HU, but CT stored already clipped
    lies higher: BTCV's copy holds air at -125 HU (22 on this scale), which a fixed threshold of 2
    took for body, so the whole field of view was "body". The air is 0 (the floor, also what
    resampling pads with), unless more than 1% of the volume lies between 0 and about -113 HU: then
    the most frequent such value (the upper edge of its 1-wide bin). Otsu is no body mask here: on
    windowed CT its threshold falls between fat and soft tissue and cuts the fat away."""
    import cc3d
    from scipy import ndimage

    ct255 = np.asarray(ct255)
    dark = ct255[(ct255 > 0) & (ct255 < _AIR_FLOOR_MAX)]
    floor = 0.0  # air clipped to the window's floor (or padding): exactly 0
    if dark.size > 0.01 * ct255.size:  # a darker-than-fat plateau above 0: air stored clipped higher
        floor = float(np.argmax(np.bincount(np.floor(dark).astype(np.int64))) + 1)
    fg = ct255 > floor + threshold
    if not fg.any():
        return fg
    fg = cc3d.largest_k(fg, k=1, connectivity=26) > 0
    return np.stack([ndimage.binary_fill_holes(sl) for sl in fg])


def clear_ct_air(ct255: np.ndarray) -> np.ndarray:
    """``ct255`` (z, y, x; windowed CT, 0..255) with everything outside :func:`ct_body_mask` (air,
    table, clothes) set to 0, the window's floor. With ``cyclegan.fake_background: zero`` the
    CycleGAN learns from and translates CT in this form, so its input's background is as black as
    MR's: CT stored clipped above air (BTCV at -125 HU) otherwise shows the generator a grey
    background to paint."""
    ct255 = np.asarray(ct255)
    return np.where(ct_body_mask(ct255), ct255, 0).astype(ct255.dtype, copy=False)


def generator_input(ct255: np.ndarray, background: str = "keep", ct_input: str = "window") -> np.ndarray:
    """What the CycleGAN's generator sees of a windowed CT (z, y, x; 0..255), in training and in
    translation alike: with ``ct_input="window"`` the CT itself, its air cleared for
    ``background="zero"`` (:func:`clear_ct_air`); with ``"inverted"`` (``cyclegan.ct_input``, a
    deviation) ``255 - ct255`` inside :func:`ct_body_mask` and 0 outside it, whatever
    ``background``. Inverted, fat is bright and contrast-enhanced organs and vessels dark, as in
    T1W: on the quick phantom the inverted CT alone is nearer the true T1W than every CycleGAN
    measured (organ error 41.6 on 0..255 against 52-67; benchmarks/RESULTS.md, session 13)."""
    ct255 = np.asarray(ct255)
    if ct_input == "inverted":
        return np.where(ct_body_mask(ct255), 255.0 - ct255, 0.0).astype(ct255.dtype, copy=False)
    if ct_input != "window":
        raise FlareInputError("cyclegan.ct_input", f"unknown value {ct_input!r}", "use window or inverted")
    return clear_ct_air(ct255) if background == "zero" else ct255


def zero_outside_body(fake: np.ndarray, ct255: np.ndarray) -> np.ndarray:
    """``fake`` (z, y, x) with every voxel outside the body of ``ct255`` (the CT it was translated
    from, on the same grid; :func:`ct_body_mask`) set to 0, the MR background.

    ``cyclegan.fake_background: zero`` (a deviation; the paper keeps the generator's output as it
    is): where the MR volumes' fields of view hug the body, the generator never sees air in its
    target domain and is free to paint the CT's air and table as tissue, which the segmentation
    network would then learn as MR."""
    return np.where(ct_body_mask(ct255), fake, 0.0).astype(np.float32)


def translate_to_fake_mr(
    generator: nn.Module,
    ct_volumes: Sequence[TrainVolume],
    patch_zyx: Sequence[int],
    *,
    overlap: float = 0.5,
    blend: str = "gaussian",
    background: str = "keep",
    ct_input: str = "window",
    device: str | torch.device | None = None,
    progress: bool = False,
    organ_targets: Mapping[int, float] | None = None,
    refine_erode: int = 1,
    mr_scaling: str = "percentile",
    mr_percentiles: Sequence[float] = (0.5, 99.5),
) -> list[TrainVolume]:
    """Translate CT volumes (0..255, with labels) into z-scored fake MR volumes with the same labels.

    ``ct_volumes`` are what :func:`flarelib.train.stages.load_train_volume` gives with
    ``intensity="ct255"``; the result has each volume's shape, spacing, label and annotated-class
    mask, the name ``<name>_fake`` and modality :data:`~flarelib.train.sampling.FAKE_MR` (so
    ``train.intensity_aug`` remaps it too). A 2-D generator translates with one-slice tiles
    (``patch_zyx = (1, Y, X)``): every slice once. ``background="zero"``: the CT's air is
    cleared first (:func:`clear_ct_air`, as the CycleGAN saw it in training) and the fake is 0
    outside the CT's body mask (:func:`zero_outside_body`) before it is z-scored. ``ct_input``:
    ``cyclegan.ct_input`` (:func:`generator_input`). ``organ_targets`` (organ id -> brightness on
    0..255; :func:`flarelib.train.organ_refine.organ_targets`): the fake is scaled to 0..255 by
    ``mr_scaling`` / ``mr_percentiles`` (the CycleGAN's MR domain) and each organ of its label moved
    to its target (:func:`~flarelib.train.organ_refine.refine_fake`, erosion ``refine_erode``)
    before it is z-scored.
    """
    from tqdm.auto import tqdm

    from flarelib.preprocess import zscore
    from flarelib.train.cyclegan import translate_volume

    out = []
    for vol in tqdm(ct_volumes, desc="CT -> fake MR", disable=not progress, leave=False):
        if vol.label is None:
            raise FlareInputError(
                vol.name, "this CT volume has no label to carry over", "translate labelled CT only"
            )
        ct = generator_input(vol.image, background, ct_input)
        fake = translate_volume(generator, ct, patch_zyx, overlap, blend=blend, device=device)
        if organ_targets:
            from flarelib.preprocess import mr_scale
            from flarelib.train.organ_refine import refine_fake

            fake255 = np.asarray(mr_scale(fake.astype(np.float32), mr_scaling, tuple(mr_percentiles)))
            fake = refine_fake(fake255, vol.label, organ_targets, erode=refine_erode)
        if background == "zero":
            fake = zero_outside_body(fake, vol.image)
        out.append(
            TrainVolume(
                zscore(fake).astype(np.float32),
                vol.label,
                vol.annotated,
                name=f"{vol.name}_fake",
                spacing_zyx=vol.spacing_zyx,
                modality=FAKE_MR,
            )
        )
    return out
