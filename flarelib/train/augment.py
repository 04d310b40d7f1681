"""nnU-Net-style data augmentation on CPU, per sample, driven by a numpy ``Generator``.

Arrays are ``(z, y, x)``; ``spacing_zyx`` in mm. The order follows nnU-Net: spatial transform
(rotation, scaling, elastic deformation, evaluated while cutting the patch out of the whole volume,
so rotated corners show real anatomy rather than padding), Gaussian noise, Gaussian blur,
multiplicative brightness, contrast, simulated low resolution, gamma (also on the inverted image),
mirroring. Image and label are transformed jointly; labels use nearest-neighbour interpolation.

Mirroring the x axis (axis 2; in LPS x runs right -> left of the patient) turns a right organ into a
left one, so with ``swap_lr_labels`` the paired ids 2<->13 and 7<->8 are swapped
(:func:`flarelib.labels.lr_swap_lut`); mirroring z or y swaps nothing.

A patch of one slice (``patch_zyx = (1, Y, X)``, the 2d configuration) is transformed in its plane,
as nnU-Net's 2-D augmentation: no rotation about y or x (which would cut an oblique slice) and no
elastic displacement along z. Its random numbers are drawn all the same, so the stream of draws has
one layout for every patch size.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage

from flarelib.labels import lr_swap_lut

_LR_LUT = lr_swap_lut()


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Probabilities (per sample) and ranges of each augmentation (nnU-Net defaults, 3-D)."""

    p_rotation: float = 0.2
    rotation_inplane_deg: float = 30.0  # about z, i.e. in the (y, x) plane
    rotation_outplane_deg: float = 5.0  # about y and about x ("mostly in-plane")
    p_scale: float = 0.2
    scale_range: tuple[float, float] = (0.7, 1.4)  # >1 zooms out (samples a larger region)
    p_elastic: float = 0.05
    elastic_max_displacement: float = 3.0  # voxels
    elastic_grid_spacing: tuple[int, int, int] = (8, 24, 24)  # control points every (z, y, x) voxels
    p_noise: float = 0.1
    noise_variance: tuple[float, float] = (0.0, 0.1)
    p_blur: float = 0.2
    blur_sigma: tuple[float, float] = (0.5, 1.0)  # voxels
    p_brightness: float = 0.15
    brightness_range: tuple[float, float] = (0.75, 1.25)
    p_contrast: float = 0.15
    contrast_range: tuple[float, float] = (0.75, 1.25)
    p_lowres: float = 0.25
    lowres_zoom: tuple[float, float] = (0.5, 1.0)
    p_gamma: float = 0.3
    p_gamma_inverted: float = 0.1
    gamma_range: tuple[float, float] = (0.7, 1.5)
    p_mirror: float = 0.5  # per axis
    mirror_axes: tuple[int, ...] = (0, 1, 2)
    swap_lr_labels: bool = True
    image_order: int = 3  # spline order for the image under a spatial transform

    @classmethod
    def none(cls, swap_lr_labels: bool = True) -> AugmentConfig:
        """No augmentation at all (plain crops)."""
        return cls(
            p_rotation=0,
            p_scale=0,
            p_elastic=0,
            p_noise=0,
            p_blur=0,
            p_brightness=0,
            p_contrast=0,
            p_lowres=0,
            p_gamma=0,
            p_gamma_inverted=0,
            p_mirror=0,
            swap_lr_labels=swap_lr_labels,
        )


# --------------------------------------------------------------------------------------------------
# Spatial
# --------------------------------------------------------------------------------------------------


def _rotation_zyx(angle_z: float, angle_y: float, angle_x: float) -> np.ndarray:
    """3x3 rotation acting on (z, y, x) vectors: about z (y-x plane), then y (z-x), then x (z-y)."""
    cz, sz = math.cos(angle_z), math.sin(angle_z)
    cy, sy = math.cos(angle_y), math.sin(angle_y)
    cx, sx = math.cos(angle_x), math.sin(angle_x)
    rz = np.array([[1, 0, 0], [0, cz, -sz], [0, sz, cz]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rx = np.array([[cx, -sx, 0], [sx, cx, 0], [0, 0, 1]])
    return rx @ ry @ rz


def _crop_pad(arr: np.ndarray, lo: np.ndarray, size: tuple[int, ...], pad_value: float) -> np.ndarray:
    """``arr[lo : lo + size]`` with constant padding where the box leaves the array."""
    out = np.full(size, pad_value, dtype=arr.dtype)
    src, dst = [], []
    for lo_i, n, s in zip(lo, size, arr.shape, strict=True):
        a, b = max(int(lo_i), 0), min(int(lo_i) + n, s)
        if b <= a:
            return out
        src.append(slice(a, b))
        dst.append(slice(a - int(lo_i), b - int(lo_i)))
    out[tuple(dst)] = arr[tuple(src)]
    return out


def _elastic_field(patch: tuple[int, int, int], cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Smooth displacement field (3, *patch) in voxels: random control points, cubic upsampling."""
    coarse = tuple(max(2, math.ceil(p / g) + 1) for p, g in zip(patch, cfg.elastic_grid_spacing, strict=True))
    mag = rng.uniform(0, cfg.elastic_max_displacement)
    field = rng.uniform(-1, 1, size=(3, *coarse))
    out = np.empty((3, *patch), dtype=np.float32)
    factors = [p / c for p, c in zip(patch, coarse, strict=True)]
    for i in range(3):
        up = ndimage.zoom(field[i], factors, order=3, mode="nearest", grid_mode=True)
        up = _crop_pad(up, np.zeros(3, int), patch, 0.0)
        out[i] = up * mag
    return out


def extract_patch(
    image: np.ndarray,
    label: np.ndarray | None,
    center_zyx: tuple[float, float, float] | np.ndarray,
    patch_zyx: tuple[int, int, int],
    rng: np.random.Generator,
    cfg: AugmentConfig,
    *,
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0),
    pad_value: float = 0.0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Cut a ``patch_zyx`` patch centred on ``center_zyx`` (voxel index), with a random spatial transform.

    Rotation and scaling act in physical space (mm, via ``spacing_zyx``) around the patch centre; the
    elastic field is in voxels. Regions outside the volume get ``pad_value`` (image) and 0 (label).
    Without a drawn transform this is an integer crop. Returns float32 image and uint8 label (or None).
    """
    patch = tuple(int(p) for p in patch_zyx)
    one_slice = patch[0] == 1  # 2d: in-plane transforms only (module docstring)
    center = np.asarray(center_zyx, dtype=np.float64)
    do_rot = rng.uniform() < cfg.p_rotation
    do_scale = rng.uniform() < cfg.p_scale
    do_elastic = rng.uniform() < cfg.p_elastic
    if not (do_rot or do_scale or do_elastic):
        lo = np.round(center - (np.asarray(patch) - 1) / 2.0).astype(int)
        img = _crop_pad(image, lo, patch, pad_value).astype(np.float32, copy=False)
        lab = None if label is None else _crop_pad(label, lo, patch, 0).astype(np.uint8, copy=False)
        return img, lab

    matrix = np.eye(3)
    if do_rot:
        a_in = math.radians(cfg.rotation_inplane_deg)
        a_out = math.radians(cfg.rotation_outplane_deg)
        angles = [rng.uniform(-a_in, a_in), rng.uniform(-a_out, a_out), rng.uniform(-a_out, a_out)]
        if one_slice:
            angles[1] = angles[2] = 0.0
        matrix = _rotation_zyx(*angles)
    if do_scale:
        matrix = matrix * rng.uniform(*cfg.scale_range)
    spacing = np.asarray(spacing_zyx, dtype=np.float64)
    # voxel offsets from the centre -> mm -> transform -> voxels of the source volume
    full = (np.diag(1.0 / spacing) @ matrix @ np.diag(spacing)).astype(np.float32)
    grids = np.meshgrid(*[np.arange(p, dtype=np.float32) - (p - 1) / 2.0 for p in patch], indexing="ij")
    offsets = np.stack(grids).reshape(3, -1)
    coords = (full @ offsets).reshape(3, *patch)
    if do_elastic:
        field = _elastic_field(patch, cfg, rng)
        if one_slice:
            field[0] = 0.0
        coords += field
    coords += center.astype(np.float32)[:, None, None, None]

    # Interpolate from a sub-block around the coordinates (the spline prefilter then stays local).
    margin = 6
    shape = np.asarray(image.shape)
    lo = np.maximum(np.floor(coords.reshape(3, -1).min(1)).astype(int) - margin, 0)
    hi = np.minimum(np.ceil(coords.reshape(3, -1).max(1)).astype(int) + margin + 1, shape)
    inside = np.ones(patch, dtype=bool)
    for i in range(3):
        inside &= (coords[i] >= -0.5) & (coords[i] <= shape[i] - 0.5)
    if np.any(hi <= lo):
        img = np.full(patch, pad_value, dtype=np.float32)
        lab = None if label is None else np.zeros(patch, dtype=np.uint8)
        return img, lab
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    local = coords - lo.astype(np.float32)[:, None, None, None]
    img = ndimage.map_coordinates(
        np.ascontiguousarray(image[box], dtype=np.float32), local, order=cfg.image_order, mode="nearest"
    ).astype(np.float32, copy=False)
    img[~inside] = pad_value
    lab = None
    if label is not None:
        lab = ndimage.map_coordinates(np.ascontiguousarray(label[box]), local, order=0, mode="nearest")
        lab = lab.astype(np.uint8, copy=False)
        lab[~inside] = 0
    return img, lab


# --------------------------------------------------------------------------------------------------
# Intensity (image only)
# --------------------------------------------------------------------------------------------------


def _lowres(img: np.ndarray, zoom: float) -> np.ndarray:
    shape = np.asarray(img.shape)
    small = np.maximum(np.round(shape * zoom).astype(int), 1)
    idx = [
        np.minimum(((np.arange(n) + 0.5) * s / n).astype(int), s - 1)
        for n, s in zip(small, shape, strict=True)
    ]
    down = img[np.ix_(*idx)]  # nearest-neighbour downsampling
    factors = shape / small
    up = ndimage.zoom(down, factors, order=3, mode="nearest", grid_mode=True)
    return _crop_pad(up, np.zeros(3, int), tuple(shape), float(img.mean())).astype(np.float32)


def _gamma(img: np.ndarray, gamma: float, invert: bool) -> np.ndarray:
    """nnU-Net gamma: rescale to [0, 1], ``x**gamma``, rescale back, keep mean and std."""
    x = -img if invert else img
    mean, std = x.mean(), x.std()
    lo, hi = x.min(), x.max()
    rng_ = max(float(hi - lo), 1e-7)
    x = np.power((x - lo) / rng_, gamma) * rng_ + lo
    new_std = x.std()
    if new_std > 1e-7:
        x = (x - x.mean()) / new_std * std + mean
    return (-x if invert else x).astype(np.float32)


def augment_intensity(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Noise, blur, brightness, contrast, low resolution, gamma (each with its probability)."""
    img = image.astype(np.float32, copy=True)
    if rng.uniform() < cfg.p_noise:
        var = rng.uniform(*cfg.noise_variance)
        img += rng.normal(0.0, math.sqrt(var), size=img.shape).astype(np.float32)
    if rng.uniform() < cfg.p_blur:
        img = ndimage.gaussian_filter(img, sigma=rng.uniform(*cfg.blur_sigma), mode="nearest")
    if rng.uniform() < cfg.p_brightness:
        img *= np.float32(rng.uniform(*cfg.brightness_range))
    if rng.uniform() < cfg.p_contrast:
        factor = rng.uniform(*cfg.contrast_range)
        mean, lo, hi = img.mean(), img.min(), img.max()
        img = np.clip((img - mean) * factor + mean, lo, hi).astype(np.float32)
    if rng.uniform() < cfg.p_lowres:
        img = _lowres(img, rng.uniform(*cfg.lowres_zoom))
    if rng.uniform() < cfg.p_gamma_inverted:
        img = _gamma(img, rng.uniform(*cfg.gamma_range), invert=True)
    if rng.uniform() < cfg.p_gamma:
        img = _gamma(img, rng.uniform(*cfg.gamma_range), invert=False)
    return img


# --------------------------------------------------------------------------------------------------
# Mirroring
# --------------------------------------------------------------------------------------------------


def mirror(
    image: np.ndarray, label: np.ndarray | None, axes: tuple[int, ...], swap_lr_labels: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Flip ``image``/``label`` (z, y, x) along ``axes``; flipping x (axis 2) swaps L/R labels if asked."""
    axes = tuple(sorted(set(int(a) for a in axes)))
    if not axes:
        return image, label
    img = np.ascontiguousarray(np.flip(image, axes))
    lab = None
    if label is not None:
        lab = np.ascontiguousarray(np.flip(label, axes))
        if swap_lr_labels and 2 in axes:
            lab = _LR_LUT[lab]
    return img, lab


def random_mirror(
    image: np.ndarray, label: np.ndarray | None, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray | None]:
    """Mirror each axis of ``cfg.mirror_axes`` with probability ``cfg.p_mirror``."""
    axes = tuple(a for a in cfg.mirror_axes if rng.uniform() < cfg.p_mirror)
    return mirror(image, label, axes, cfg.swap_lr_labels)


def augment_sample(
    image: np.ndarray,
    label: np.ndarray | None,
    center_zyx: tuple[float, float, float] | np.ndarray,
    patch_zyx: tuple[int, int, int],
    rng: np.random.Generator,
    cfg: AugmentConfig,
    *,
    spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0),
    pad_value: float = 0.0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """One sample: :func:`extract_patch`, then :func:`augment_intensity`, then :func:`random_mirror`."""
    img, lab = extract_patch(
        image, label, center_zyx, patch_zyx, rng, cfg, spacing_zyx=spacing_zyx, pad_value=pad_value
    )
    img = augment_intensity(img, rng, cfg)
    return random_mirror(img, lab, rng, cfg)
