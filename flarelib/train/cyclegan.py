"""3D CycleGAN training system and whole-volume translation (STUDY.md "Networks", stage 1).

Domains: A (e.g. CT) and B (e.g. MR T1W); ``g_ab`` translates A -> B, ``g_ba`` B -> A; ``d_a`` and
``d_b`` judge real vs fake in each domain. Images enter as 0..255 volumes and are scaled to
[-1, 1] (the generators end in tanh). Objective (CycleGAN, eq. 4-5 of the paper):

* generators: GAN loss (``gan_loss``: ``lsgan`` = MSE to 1, the default; ``bce`` = BCE with logits,
  the authors' code) + ``lambda_cycle`` * (|G_BA(G_AB(a)) - a|_1 + |G_AB(G_BA(b)) - b|_1)
  + ``lambda_identity`` * (|G_AB(b) - b|_1 + |G_BA(a) - a|_1);
* discriminators: 0.5 * (GAN(D(real), 1) + GAN(D(fake from an image pool of ``pool_size``), 0)).

Adam(lr, betas), learning rate constant until ``decay_start_epoch`` then linear to 0 at ``epochs``
(``iterations_per_epoch`` iterations per epoch). It runs through :func:`flarelib.train.loop.train`;
under DDP, gradients are all-reduced by the loop (the generators run several times per step,
which DDP's reducer does not handle together with frozen discriminators).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flarelib.config import CycleGANParams
from flarelib.train.distributed import DistInfo
from flarelib.train.schedules import linear_decay_lr
from flarelib.train.systems import StepContext, TrainSystem


class ImagePool:
    """CycleGAN's history of generated images: with a full pool, each query returns, per image, with
    probability 1/2 a stored image (replacing it by the new one) and otherwise the new image."""

    def __init__(self, size: int, seed: int = 0):
        self.size = int(size)
        self.images: list[Tensor] = []
        self.rng = np.random.default_rng(seed)

    def query(self, images: Tensor) -> Tensor:
        if self.size <= 0:
            return images
        out = []
        for img in images.detach():
            img = img[None]
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif self.rng.uniform() > 0.5:
                k = int(self.rng.integers(self.size))
                out.append(self.images[k].clone())
                self.images[k] = img.clone()
            else:
                out.append(img)
        return torch.cat(out)

    def state_dict(self) -> dict[str, Any]:
        return {"images": [t.cpu() for t in self.images], "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | None = None) -> None:
        self.images = [t.to(device) if device is not None else t for t in state["images"]]
        self.rng.bit_generator.state = state["rng"]


def gan_loss(pred: Tensor, target_is_real: bool, kind: str = "lsgan") -> Tensor:
    """LSGAN (MSE to 1/0) or BCE-with-logits against an all-real / all-fake target (float32)."""
    pred = pred.float()
    target = torch.ones_like(pred) if target_is_real else torch.zeros_like(pred)
    if kind == "lsgan":
        return F.mse_loss(pred, target)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(pred, target)
    raise ValueError(f"unknown gan_loss {kind!r}: use 'lsgan' or 'bce'")


def _set_requires_grad(nets: Sequence[nn.Module], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


class CycleGAN(TrainSystem):
    """CycleGAN system: two generators, two discriminators, two Adam optimizers, two image pools."""

    eval_name = "g_ab"

    def __init__(
        self,
        g_ab: nn.Module,
        g_ba: nn.Module,
        d_a: nn.Module,
        d_b: nn.Module,
        params: CycleGANParams | None = None,
        *,
        seed: int = 0,
    ):
        self.params = params if params is not None else CycleGANParams()
        self.g_ab, self.g_ba, self.d_a, self.d_b = g_ab.train(), g_ba.train(), d_a.train(), d_b.train()
        self.seed = int(seed)
        self.pool_a = ImagePool(self.params.pool_size, seed=self._pool_seed(0, 0))
        self.pool_b = ImagePool(self.params.pool_size, seed=self._pool_seed(0, 1))
        self.opt_g: torch.optim.Optimizer | None = None
        self.opt_d: torch.optim.Optimizer | None = None
        self.device = torch.device("cpu")

    def _pool_seed(self, rank: int, which: int) -> int:
        return int(np.random.SeedSequence([self.seed & 0xFFFFFFFF, rank, which, 11]).generate_state(1)[0])

    # ---- TrainSystem ---------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"g_ab": self.g_ab, "g_ba": self.g_ba, "d_a": self.d_a, "d_b": self.d_b}

    def to(self, device: torch.device) -> CycleGAN:
        super().to(device)
        self.device = torch.device(device)
        return self

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        p = self.params
        betas = tuple(p.betas)
        self.opt_g = torch.optim.Adam(
            itertools.chain(self.g_ab.parameters(), self.g_ba.parameters()), lr=p.lr, betas=betas
        )
        self.opt_d = torch.optim.Adam(
            itertools.chain(self.d_a.parameters(), self.d_b.parameters()), lr=p.lr, betas=betas
        )
        return {"g": self.opt_g, "d": self.opt_d}

    def learning_rate(self, name: str, iteration: int, total: int) -> float:
        p = self.params
        return linear_decay_lr(p.lr, iteration, p.iterations_per_epoch, p.decay_start_epoch, p.epochs)

    def wrap_distributed(self, info: DistInfo) -> bool:
        self.pool_a = ImagePool(self.params.pool_size, seed=self._pool_seed(info.rank, 0))
        self.pool_b = ImagePool(self.params.pool_size, seed=self._pool_seed(info.rank, 1))
        return False  # the loop all-reduces the gradients

    def eval_model(self) -> nn.Module:
        return self.g_ab

    def extra_state(self) -> dict[str, Any]:
        return {"pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "pool_a" in state:
            self.pool_a.load_state_dict(state["pool_a"], self.device)
            self.pool_b.load_state_dict(state["pool_b"], self.device)

    # ---- one step ------------------------------------------------------------------------------
    def generator_losses(
        self, real_a: Tensor, real_b: Tensor, ctx: StepContext | None = None
    ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """Generator objective; returns (losses, fake_a, fake_b). Keys: ``loss_g``, ``gan``,
        ``cycle`` (weighted), ``identity`` (weighted), ``cycle_l1`` (unweighted mean of both ways)."""
        p = self.params
        autocast = ctx.autocast() if ctx is not None else torch.autocast("cpu", enabled=False)
        with autocast:
            fake_b = self.g_ab(real_a)
            rec_a = self.g_ba(fake_b)
            fake_a = self.g_ba(real_b)
            rec_b = self.g_ab(fake_a)
            pred_b, pred_a = self.d_b(fake_b), self.d_a(fake_a)
            idt_b = self.g_ab(real_b) if p.lambda_identity > 0 else None
            idt_a = self.g_ba(real_a) if p.lambda_identity > 0 else None
        gan = gan_loss(pred_b, True, p.gan_loss) + gan_loss(pred_a, True, p.gan_loss)
        cyc_a = F.l1_loss(rec_a.float(), real_a.float())
        cyc_b = F.l1_loss(rec_b.float(), real_b.float())
        cycle = p.lambda_cycle * (cyc_a + cyc_b)
        identity = gan.new_zeros(())
        if idt_a is not None and idt_b is not None:
            identity = p.lambda_identity * (
                F.l1_loss(idt_b.float(), real_b.float()) + F.l1_loss(idt_a.float(), real_a.float())
            )
        losses = {
            "loss_g": gan + cycle + identity,
            "gan": gan,
            "cycle": cycle,
            "identity": identity,
            "cycle_l1": 0.5 * (cyc_a + cyc_b),
        }
        return losses, fake_a, fake_b

    def discriminator_loss(
        self, real_a: Tensor, real_b: Tensor, fake_a: Tensor, fake_b: Tensor, ctx: StepContext | None = None
    ) -> Tensor:
        kind = self.params.gan_loss
        fa, fb = self.pool_a.query(fake_a.detach()), self.pool_b.query(fake_b.detach())
        autocast = ctx.autocast() if ctx is not None else torch.autocast("cpu", enabled=False)
        with autocast:
            pra, pfa = self.d_a(real_a), self.d_a(fa)
            prb, pfb = self.d_b(real_b), self.d_b(fb)
        loss_a = 0.5 * (gan_loss(pra, True, kind) + gan_loss(pfa, False, kind))
        loss_b = 0.5 * (gan_loss(prb, True, kind) + gan_loss(pfb, False, kind))
        return loss_a + loss_b

    def training_step(self, batch: dict[str, Tensor], ctx: StepContext) -> dict[str, float]:
        if self.opt_g is None or self.opt_d is None:
            raise RuntimeError("make_optimizers() first (the training loop does it)")
        real_a, real_b = batch["a"], batch["b"]
        _set_requires_grad([self.d_a, self.d_b], False)
        losses, fake_a, fake_b = self.generator_losses(real_a, real_b, ctx)
        ctx.step(losses["loss_g"], self.opt_g)
        _set_requires_grad([self.d_a, self.d_b], True)
        loss_d = self.discriminator_loss(real_a, real_b, fake_a, fake_b, ctx)
        ctx.step(loss_d, self.opt_d)
        out = {k: float(v.detach()) for k, v in losses.items()}
        out["loss_d"] = float(loss_d.detach())
        out["loss"] = out["loss_g"]
        return out


# --------------------------------------------------------------------------------------------------
# Whole-volume translation
# --------------------------------------------------------------------------------------------------


def blend_weights(tile_zyx: Sequence[int], kind: str = "gaussian", sigma_scale: float = 0.125) -> np.ndarray:
    """Blending weights of one tile, float32 (z, y, x), max 1, strictly positive.

    ``gaussian``: nnU-Net's importance map (sigma = tile * ``sigma_scale``); ``linear``: a tent that
    falls linearly towards the tile's faces.
    """
    axes = []
    for n in tile_zyx:
        i = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
        if kind == "gaussian":
            w = np.exp(-0.5 * (i / max(n * sigma_scale, 1e-6)) ** 2)
        elif kind == "linear":
            w = 1.0 - np.abs(i) / ((n + 1) / 2.0)
        else:
            raise ValueError(f"unknown blend {kind!r}: use 'gaussian' or 'linear'")
        axes.append(w)
    out = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    out = out / out.max()
    return np.maximum(out, max(float(out[out > 0].min()), 1e-6)).astype(np.float32)


def tile_starts(size: int, tile: int, overlap: float) -> list[int]:
    """Start indices of tiles of length ``tile`` covering ``size`` with at least ``overlap`` overlap."""
    if size <= tile:
        return [0]
    step = max(1.0, tile * (1.0 - overlap))
    n = math.ceil((size - tile) / step) + 1
    return sorted({round(v) for v in np.linspace(0, size - tile, n)})


@torch.no_grad()
def translate_volume(
    generator: nn.Module,
    image_0_255: np.ndarray,
    patch_zyx: Sequence[int],
    overlap: float = 0.5,
    *,
    blend: str = "gaussian",
    device: torch.device | str | None = None,
    multiple: int = 4,
    batch_size: int = 32,
) -> np.ndarray:
    """Translate a whole 0..255 volume (z, y, x) with ``generator`` by overlapping blended tiles.

    Input is scaled to [-1, 1], cut into ``patch_zyx`` tiles (smaller where the volume is smaller,
    rounded up to a multiple of ``multiple``; the volume is edge-padded to at least one tile),
    tiles overlap by ``overlap`` (fraction of the tile) and are blended with :func:`blend_weights`.
    Tiles go through the generator ``batch_size`` at a time (its norms are per sample, so the
    batch changes nothing but the speed). Returns float32 0..255 of the input's shape. The
    generator runs in eval mode.
    """
    img = np.asarray(image_0_255, dtype=np.float32)
    if img.ndim != 3:
        raise ValueError(f"translate_volume needs a (z, y, x) volume, got shape {img.shape}")
    if device is None:
        params = list(generator.parameters())
        device = params[0].device if params else torch.device("cpu")
    shape = img.shape
    tile = tuple(
        int(min(p, math.ceil(s / multiple) * multiple)) for p, s in zip(patch_zyx, shape, strict=True)
    )
    padded = tuple(max(s, t) for s, t in zip(shape, tile, strict=True))
    x = np.pad(img / 127.5 - 1.0, [(0, p - s) for p, s in zip(padded, shape, strict=True)], mode="edge")
    weights = torch.from_numpy(blend_weights(tile, blend))
    acc = torch.zeros(padded, dtype=torch.float32)
    wsum = torch.zeros(padded, dtype=torch.float32)
    was_training = generator.training
    generator.eval()
    try:
        xt = torch.from_numpy(x)
        slices = [
            (slice(z, z + tile[0]), slice(y, y + tile[1]), slice(xx, xx + tile[2]))
            for z in tile_starts(padded[0], tile[0], overlap)
            for y in tile_starts(padded[1], tile[1], overlap)
            for xx in tile_starts(padded[2], tile[2], overlap)
        ]
        step = max(1, int(batch_size))
        for k in range(0, len(slices), step):
            chunk = slices[k : k + step]
            batch = torch.stack([xt[sl] for sl in chunk])[:, None].to(device)
            outs = generator(batch)[:, 0].float().cpu()
            for sl, out in zip(chunk, outs, strict=True):
                acc[sl] += out * weights
                wsum[sl] += weights
    finally:
        generator.train(was_training)
    res = (acc / wsum)[: shape[0], : shape[1], : shape[2]].numpy()
    return np.clip((res + 1.0) * 127.5, 0.0, 255.0).astype(np.float32)
