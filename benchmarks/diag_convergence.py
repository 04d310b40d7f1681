"""Why is convergence slow? Supervised training on the smoke phantom's CT with a plain loop.

    python benchmarks/diag_convergence.py --optimizer sgd|adam --lr 0.01 --net thin|wide|monai
        [--augment none|default|mirror] [--iterations 300] [--every 100] [--body-norm]
        [--patch Z Y X] [--tiles] [--save FILE]

The engine's parts (patch sampler, augmentation, partial-label Dice + CE with deep supervision, the
U-Net) in a bare loop without Mean Teacher, so that one factor at a time can be changed: the
optimizer (the paper's SGD Nesterov 0.99 with poly lr, or Adam with poly lr), the network
(``thin``: (8, 16, 32, 64, 80, 80), the quick profile's until session 3; ``wide``: (16, 32, 64,
128, 256, 256), its channels since; ``--channels``: any six widths;
``monai``: MONAI's ``BasicUNet`` (16, 32, 64, 128, 256, 16), one head, as an independent network),
augmentation, and the CT intensity normalisation (``--body-norm``: z-score over the body instead of
the whole volume). Every ``--every`` iterations it prints the mean loss terms, the Dice of liver,
spleen, right kidney, left kidney and both kidneys as one organ on one training volume and on the
held-out CT case (sliding window as the engine validates; ``--tiles``: non-overlapping tiles), and
what each organ's held-out voxels were predicted as. Patch 24x64x64 (``--patch``), batch 2
labelled, 4 training CT (manual + pseudo), held out: the last manual CT, as
``bench_train.py --part convergence``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from flarelib.config import compose_params
from flarelib.data.layout import discover
from flarelib.datasets import ensure_data
from flarelib.infer.sliding import SlidingWindowPredictor
from flarelib.labels import NUM_CLASSES
from flarelib.models.unet import unet_from_params
from flarelib.paths import project_root
from flarelib.train.augment import AugmentConfig
from flarelib.train.loop import poly_lr, tiled_logits
from flarelib.train.losses import deep_supervision_loss
from flarelib.train.sampling import SegmentationBatches
from flarelib.train.stages import load_train_volume

ORGANS = (1, 3, 2, 13)  # liver, spleen, right kidney, left kidney
PATCH = (24, 64, 64)
THIN = [8, 16, 32, 64, 80, 80]
WIDE = [16, 32, 64, 128, 256, 256]
POOLS = [[1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]


def build_net(kind: str, unet_params, channels: list[int] | None = None) -> torch.nn.Module:
    if kind == "monai":
        from monai.networks.nets import BasicUNet

        return BasicUNet(3, 1, 14, features=(16, 32, 64, 128, 256, 16))
    if channels is None:
        channels = WIDE if kind == "wide" else THIN
    return unet_from_params(dataclasses.replace(unet_params, channels=channels))


def _dice(g: np.ndarray, p: np.ndarray) -> float:
    return round(2 * float((g & p).sum()) / max(1, int(g.sum() + p.sum())), 3)


def predict(net: torch.nn.Module, vol, patch, tiles: bool = False) -> np.ndarray:
    """Labels of a whole volume: the sliding-window predictor as the training engine validates
    (window = patch, step 0.5 and the step rule, Gaussian, no mirroring), or with ``tiles`` the
    argmax of non-overlapping tiles (what this script used first: it hides most of what was learned,
    see RESULTS.md)."""
    net.eval()
    if tiles:
        with torch.no_grad():
            pred = tiled_logits(net, vol.image, patch, (8, 32, 32)).argmax(0).numpy()
    else:
        pred = SlidingWindowPredictor(net, NUM_CLASSES, patch, mirror_axes=()).predict_labels(vol.image)
    net.train()
    return np.asarray(pred)


def dice_per_organ(pred: np.ndarray, vol) -> list[float]:
    """Dice of ORGANS, then of the two kidneys as one organ (separates "not found" from "L/R mixed")."""
    out = [_dice(vol.label == o, pred == o) for o in ORGANS]
    return [*out, _dice(np.isin(vol.label, (2, 13)), np.isin(pred, (2, 13)))]


def confusion(pred: np.ndarray, vol) -> str:
    """For each organ of ORGANS: the two labels its voxels are most often predicted as (fraction)."""
    parts = []
    for o in ORGANS:
        ids, counts = np.unique(pred[vol.label == o], return_counts=True)
        top = np.argsort(counts)[::-1][:2]
        parts.append(f"{o}->" + ",".join(f"{ids[i]}:{counts[i] / counts.sum():.2f}" for i in top))
    return " ".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    ap.add_argument("--lr", type=float, default=None, help="default: 0.01 (sgd), 3e-3 (adam)")
    ap.add_argument("--net", choices=("thin", "wide", "monai"), default="thin")
    ap.add_argument("--channels", type=int, nargs=6, default=None, help="our U-Net with these widths")
    ap.add_argument(
        "--augment",
        choices=("none", "default", "mirror"),
        default="none",
        help="mirror: only label-swapping flips over z and x (p 0.5 each), the axes of the paper's TTA",
    )
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--body-norm", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--patch", type=int, nargs=3, default=list(PATCH), metavar=("Z", "Y", "X"))
    ap.add_argument(
        "--spacing",
        type=float,
        nargs=3,
        default=None,
        metavar=("Z", "Y", "X"),
        help="resample the phantom to this spacing in mm (default: the smoke profile's)",
    )
    ap.add_argument("--tiles", action="store_true", help="evaluate by non-overlapping tiles (the old way)")
    ap.add_argument("--save", default=None, help="write the final weights here (state_dict)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lr = args.lr if args.lr is not None else (0.01 if args.optimizer == "sgd" else 3e-3)

    params = compose_params(
        project_root() / "params" / "runs" / "default.yaml",
        "smoke",
        "phantom",
        overrides={"unet": {"channels": THIN, "pool_zyx": POOLS}},
    )
    if args.spacing:
        params = dataclasses.replace(
            params, preprocess=dataclasses.replace(params.preprocess, target_spacing_zyx=tuple(args.spacing))
        )
    ensure_data(params, log=lambda *_: None)
    cases = discover(params)
    spacing = params.preprocess.target_spacing_zyx
    ct = cases["ct_manual"] + cases["ct_pseudo"]
    held = cases["ct_manual"][-1:]
    train = [load_train_volume(c, spacing, "zscore", params.preprocess) for c in ct if c not in held]
    val = [load_train_volume(c, spacing, "zscore", params.preprocess) for c in held]
    if args.body_norm:
        for v in train + val:
            body = v.image > -0.3
            v.image[:] = np.clip((v.image - v.image[body].mean()) / v.image[body].std(), -3, 3)

    torch.manual_seed(0)
    net = build_net(args.net, params.unet, args.channels)
    augment = AugmentConfig() if args.augment == "default" else AugmentConfig.none()
    if args.augment == "mirror":
        augment = dataclasses.replace(augment, p_mirror=0.5, mirror_axes=(0, 2))
    batches = SegmentationBatches(
        train, None, tuple(args.patch), batch_labeled=2, batch_unlabeled=0, augment=augment, seed=1
    )
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.99, nesterov=True, weight_decay=3e-5)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=3e-5)
    n_params = sum(p.numel() for p in net.parameters())
    print(
        f"{args.channels or args.net} net ({n_params / 1e6:.2f} M), {args.optimizer} lr {lr}, "
        f"augment {args.augment}"
    )
    print(f"patch {args.patch}; Dice order: liver, spleen, right kidney, left kidney, both kidneys")
    t0, rows = time.perf_counter(), []
    for it in range(args.iterations):
        for g in opt.param_groups:
            g["lr"] = poly_lr(lr, it, args.iterations, 0.9)
        batch = batches(it)
        terms = deep_supervision_loss(net(batch["image_l"]), batch["label_l"].long(), batch["annotated_l"], 4)
        opt.zero_grad()
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12.0)
        opt.step()
        rows.append([float(terms[k].detach()) for k in ("loss", "ce", "dice")])
        if (it + 1) % args.every == 0:
            m = np.mean(rows[-args.every :], 0)
            p_train = predict(net, train[0], args.patch, args.tiles)
            p_val = predict(net, val[0], args.patch, args.tiles)
            print(
                f"it {it + 1}: loss {m[0]:.3f} ce {m[1]:.3f} dice-term {m[2]:.3f} | "
                f"train {dice_per_organ(p_train, train[0])} held-out {dice_per_organ(p_val, val[0])} | "
                f"{time.perf_counter() - t0:.0f} s\n  held-out confusion {confusion(p_val, val[0])}",
                flush=True,
            )
    if args.save:
        torch.save(net.state_dict(), args.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
