"""Training data: volumes in memory, patch sampling with foreground oversampling, background loading.

Arrays are ``(z, y, x)``. Every batch is a pure function of ``(seed, rank, batch index)``: its
random numbers come from ``np.random.default_rng([seed, rank, index])``. So a resumed run sees the
same batches as an uninterrupted one, whatever the number of loader workers, and DDP ranks draw
different patches (seeds sharded by rank).

Patches of one slice (``patch_zyx = (1, Y, X)``, the 2d configuration) take the same paths: a
foreground-oversampled patch is the slice through the chosen organ voxel, a random one any slice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import numpy as np
import torch

from flarelib.labels import NUM_CLASSES
from flarelib.train.augment import AugmentConfig, augment_sample, extract_patch
from flarelib.train.intensity_aug import IntensityAug

#: Voxel positions kept per class for foreground sampling (as nnU-Net).
MAX_LOCATIONS_PER_CLASS = 10000

#: ``TrainVolume.modality`` of a CT translated to MR by the CycleGAN (stage 1's labelled data).
FAKE_MR = "fake MR"

#: Modalities whose patches ``train.intensity_aug`` remaps: labelled CT, and CT translated to MR
#: (the randomisation on top of the translation, issue 15); never real MR.
REMAPPED_MODALITIES = frozenset({"CT", FAKE_MR})


@dataclasses.dataclass(eq=False)
class TrainVolume:
    """One training volume in memory.

    ``image``: float32 (z, y, x), already normalised (z-score for segmentation; 0..255 for the
    CycleGAN). ``label``: uint8 (z, y, x) FLARE ids 0..13, or None (unlabelled). ``annotated``: bool
    (14,), True where the class is supervised (background True; from ``LabelMap.annotated_mask()``).
    ``spacing_zyx`` (mm) makes rotations physical; (1, 1, 1) when unknown. ``modality``: ``"CT"``,
    ``"MR"``, :data:`FAKE_MR` or None (unknown); ``train.intensity_aug`` remaps the patches of
    :data:`REMAPPED_MODALITIES` only.
    """

    image: np.ndarray
    label: np.ndarray | None = None
    annotated: np.ndarray | None = None
    name: str = ""
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0)
    modality: str | None = None

    def __post_init__(self) -> None:
        self.image = np.asarray(self.image, dtype=np.float32)
        if self.image.ndim != 3:
            raise ValueError(f"{self.name}: image must be 3-D (z, y, x), got shape {self.image.shape}")
        if self.label is not None:
            self.label = np.asarray(self.label)
            if self.label.shape != self.image.shape:
                raise ValueError(f"{self.name}: label shape {self.label.shape} != image {self.image.shape}")
            if self.label.size and int(self.label.max()) >= NUM_CLASSES:
                raise ValueError(f"{self.name}: label ids must be 0..{NUM_CLASSES - 1}")
            self.label = self.label.astype(np.uint8, copy=False)
        if self.annotated is None:
            self.annotated = np.ones(NUM_CLASSES, dtype=bool)
        self.annotated = np.asarray(self.annotated, dtype=bool)
        if self.annotated.shape != (NUM_CLASSES,):
            raise ValueError(f"{self.name}: annotated must have {NUM_CLASSES} entries")
        self._locations: dict[int, np.ndarray] | None = None
        self.pad_value = float(self.image.min()) if self.image.size else 0.0

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.image.shape)  # type: ignore[return-value]

    def class_locations(self) -> dict[int, np.ndarray]:
        """``{class: (n, 3) voxel indices}`` for every annotated foreground class present (cached).

        At most :data:`MAX_LOCATIONS_PER_CLASS` per class, subsampled deterministically.
        """
        if self._locations is None:
            out: dict[int, np.ndarray] = {}
            if self.label is not None:
                flat = self.label.ravel()
                idx = np.flatnonzero(flat)
                cls = flat[idx]
                order = np.argsort(cls, kind="stable")
                idx, cls = idx[order], cls[order]
                bounds = np.searchsorted(cls, np.arange(NUM_CLASSES + 1))
                rng = np.random.default_rng(0)
                for c in range(1, NUM_CLASSES):
                    a, b = bounds[c], bounds[c + 1]
                    if b <= a or not self.annotated[c]:
                        continue
                    sel = idx[a:b]
                    if sel.size > MAX_LOCATIONS_PER_CLASS:
                        sel = np.sort(rng.choice(sel, MAX_LOCATIONS_PER_CLASS, replace=False))
                    out[c] = np.stack(np.unravel_index(sel, self.label.shape), axis=1).astype(np.int32)
            self._locations = out
        return self._locations


def random_center(shape: Sequence[int], patch: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Centre of a random patch lying inside the volume (centred where the volume is smaller)."""
    out = np.empty(3)
    for i, (s, p) in enumerate(zip(shape, patch, strict=True)):
        lo = int(rng.integers(0, s - p + 1)) if s >= p else (s - p) / 2.0
        out[i] = lo + (p - 1) / 2.0
    return out


def clamp_center(center: np.ndarray, shape: Sequence[int], patch: Sequence[int]) -> np.ndarray:
    """Move ``center`` so that the patch stays inside the volume on axes where it fits."""
    out = np.asarray(center, dtype=np.float64).copy()
    for i, (s, p) in enumerate(zip(shape, patch, strict=True)):
        half = (p - 1) / 2.0
        out[i] = min(max(out[i], half), s - 1 - half) if s >= p else (s - 1) / 2.0
    return out


class PatchSampler:
    """Draws one (augmented) patch at a time from a pool of :class:`TrainVolume`.

    A volume is picked uniformly. With probability ``foreground_oversample`` (and when the volume has
    annotated foreground) the patch is centred on a random voxel of a class chosen uniformly among the
    classes present in that volume; otherwise the patch is placed uniformly at random.

    ``intensity_aug`` (:mod:`flarelib.train.intensity_aug`): remaps the image of every patch of a CT
    volume or of a CT translated to MR (``modality`` in :data:`REMAPPED_MODALITIES`), after the
    augmentation, with parameters drawn from ``intensity_rng`` (default: the sample's Generator);
    the label is unchanged. Other volumes (real MR) draw nothing.
    """

    def __init__(
        self,
        volumes: Sequence[TrainVolume],
        patch_zyx: tuple[int, int, int],
        *,
        foreground_oversample: float = 0.33,
        augment: AugmentConfig | None = None,
        intensity_aug: IntensityAug | None = None,
    ):
        if not volumes:
            raise ValueError("PatchSampler needs at least one volume")
        self.volumes = list(volumes)
        self.patch = tuple(int(p) for p in patch_zyx)
        self.foreground_oversample = float(foreground_oversample)
        self.augment = augment if augment is not None else AugmentConfig()
        self.intensity_aug = intensity_aug
        for v in self.volumes:  # precompute so forked loader workers share it
            v.class_locations()

    def choose_center(self, vol: TrainVolume, rng: np.random.Generator, force_foreground: bool) -> np.ndarray:
        locs = vol.class_locations()
        if force_foreground and locs:
            classes = sorted(locs)
            c = classes[int(rng.integers(len(classes)))]
            voxel = locs[c][int(rng.integers(len(locs[c])))]
            return clamp_center(voxel.astype(np.float64), vol.shape, self.patch)
        return random_center(vol.shape, self.patch, rng)

    def sample(
        self, rng: np.random.Generator, intensity_rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """One sample: image float32 (z, y, x), label uint8 or None, annotated bool (14,)."""
        vol = self.volumes[int(rng.integers(len(self.volumes)))]
        force = rng.uniform() < self.foreground_oversample
        center = self.choose_center(vol, rng, force)
        img, lab = augment_sample(
            vol.image,
            vol.label,
            center,
            self.patch,
            rng,
            self.augment,
            spacing_zyx=vol.spacing_zyx,
            pad_value=vol.pad_value,
        )
        if self.intensity_aug is not None and vol.modality in REMAPPED_MODALITIES:
            params = self.intensity_aug.draw_params(intensity_rng if intensity_rng is not None else rng)
            img = self.intensity_aug.apply(img, params, label=lab)
        return img, lab, vol.annotated


def batch_rng(seed: int, rank: int, index: int, stream: int = 0) -> np.random.Generator:
    """The Generator of batch ``index`` on ``rank`` (independent streams via SeedSequence).

    ``stream > 0`` gives further independent Generators of the same batch (1: the intensity
    randomisation, so that switching it on changes the images and not which patches are cut)."""
    key = [int(seed) & 0xFFFFFFFF, int(rank), int(index)]
    return np.random.default_rng([*key, int(stream)] if stream else key)


class BatchSource(Protocol):
    """``source(index) -> dict of CPU tensors``; deterministic in ``index``."""

    def __call__(self, index: int) -> dict[str, torch.Tensor]: ...


class SegmentationBatches:
    """Batches for Mean Teacher / supervised training.

    Keys: ``image_l`` (Bl, 1, z, y, x) float32, ``label_l`` (Bl, z, y, x) uint8, ``annotated_l``
    (Bl, 14) bool, and, when ``unlabeled`` volumes and ``batch_unlabeled > 0`` are given,
    ``image_u`` (Bu, 1, z, y, x). ``intensity_aug`` applies to the labelled CT patches only
    (:class:`PatchSampler`), drawing from the batch's stream 1 (:func:`batch_rng`): the patches
    are those of a run without it, only their images are remapped.
    """

    def __init__(
        self,
        labeled: Sequence[TrainVolume],
        unlabeled: Sequence[TrainVolume] | None,
        patch_zyx: tuple[int, int, int],
        *,
        batch_labeled: int = 2,
        batch_unlabeled: int = 2,
        foreground_oversample: float = 0.33,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        rank: int = 0,
        intensity_aug: IntensityAug | None = None,
    ):
        missing = [v.name for v in labeled if v.label is None]
        if missing:
            raise ValueError(f"labelled volumes without a label: {missing[:5]}")
        self.labeled = PatchSampler(
            labeled,
            patch_zyx,
            foreground_oversample=foreground_oversample,
            augment=augment,
            intensity_aug=intensity_aug,
        )
        self.unlabeled = None
        if unlabeled and batch_unlabeled > 0:
            self.unlabeled = PatchSampler(unlabeled, patch_zyx, foreground_oversample=0.0, augment=augment)
        self.batch_labeled = int(batch_labeled)
        self.batch_unlabeled = int(batch_unlabeled) if self.unlabeled is not None else 0
        self.seed, self.rank = int(seed), int(rank)

    def __call__(self, index: int) -> dict[str, torch.Tensor]:
        rng = batch_rng(self.seed, self.rank, index)
        irng = batch_rng(self.seed, self.rank, index, stream=1) if self.labeled.intensity_aug else None
        imgs, labs, anns = [], [], []
        for _ in range(self.batch_labeled):
            img, lab, ann = self.labeled.sample(rng, irng)
            imgs.append(img)
            labs.append(lab)
            anns.append(ann)
        out = {
            "image_l": torch.from_numpy(np.stack(imgs)[:, None]),
            "label_l": torch.from_numpy(np.stack(labs)),
            "annotated_l": torch.from_numpy(np.stack(anns)),
        }
        if self.unlabeled is not None:
            uimgs = [self.unlabeled.sample(rng)[0] for _ in range(self.batch_unlabeled)]
            out["image_u"] = torch.from_numpy(np.stack(uimgs)[:, None])
        return out


class UnpairedBatches:
    """Unpaired random crops of two image domains for the CycleGAN, scaled from 0..255 to [-1, 1].

    Keys ``a`` and ``b``: (B, 1, z, y, x) float32. No augmentation beyond the random crop (the
    anatomy's left/right orientation is kept).
    """

    def __init__(
        self,
        domain_a: Sequence[TrainVolume],
        domain_b: Sequence[TrainVolume],
        patch_zyx: tuple[int, int, int],
        *,
        batch_size: int = 1,
        seed: int = 0,
        rank: int = 0,
    ):
        none = AugmentConfig.none()
        self.a = PatchSampler(domain_a, patch_zyx, foreground_oversample=0.0, augment=none)
        self.b = PatchSampler(domain_b, patch_zyx, foreground_oversample=0.0, augment=none)
        self.batch_size, self.seed, self.rank = int(batch_size), int(seed), int(rank)

    def _crop(self, sampler: PatchSampler, rng: np.random.Generator) -> np.ndarray:
        vol = sampler.volumes[int(rng.integers(len(sampler.volumes)))]
        center = random_center(vol.shape, sampler.patch, rng)
        img, _ = extract_patch(vol.image, None, center, sampler.patch, rng, sampler.augment, pad_value=0.0)
        return img / 127.5 - 1.0

    def __call__(self, index: int) -> dict[str, torch.Tensor]:
        rng = batch_rng(self.seed, self.rank, index)
        a = np.stack([self._crop(self.a, rng) for _ in range(self.batch_size)])[:, None]
        b = np.stack([self._crop(self.b, rng) for _ in range(self.batch_size)])[:, None]
        return {"a": torch.from_numpy(a.astype(np.float32)), "b": torch.from_numpy(b.astype(np.float32))}


# --------------------------------------------------------------------------------------------------
# Background loading
# --------------------------------------------------------------------------------------------------


class _IndexDataset(torch.utils.data.Dataset):
    def __init__(self, source: Callable[[int], dict[str, torch.Tensor]]):
        self.source = source

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.source(int(index))

    def __len__(self) -> int:  # pragma: no cover - the sampler decides what is read
        return 2**62


class BatchLoader:
    """Yields ``source(i)`` for ``i = start .. stop-1`` in order, prepared ahead by worker processes.

    ``num_workers = 0`` builds each batch in the calling thread (fully reproducible reference path);
    ``> 0`` uses a :class:`torch.utils.data.DataLoader` whose workers prefetch ``prefetch`` batches
    each. Batch contents do not depend on ``num_workers`` (see the module docstring).
    """

    def __init__(
        self,
        source: Callable[[int], dict[str, torch.Tensor]],
        start: int,
        stop: int,
        *,
        num_workers: int = 0,
        prefetch: int = 2,
        pin_memory: bool = False,
    ):
        self.source, self.start, self.stop = source, int(start), int(stop)
        self.num_workers, self.prefetch, self.pin_memory = int(num_workers), int(prefetch), pin_memory

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self.num_workers <= 0:
            for i in range(self.start, self.stop):
                yield self.source(i)
            return
        loader = torch.utils.data.DataLoader(
            _IndexDataset(self.source),
            batch_size=None,
            sampler=range(self.start, self.stop),
            num_workers=self.num_workers,
            prefetch_factor=max(1, self.prefetch),
            pin_memory=self.pin_memory,
            persistent_workers=False,
        )
        yield from loader
