"""Shared helpers of the inference benchmarks (bench_sliding_monai, bench_nnunet, bench_speed_accuracy,
bench_stage_times, gpu_paper_width): machine description, test volumes, models, worker processes.

Not a benchmark itself. Volumes are (z, y, x) float32, z-scored; spacings (z, y, x) in mm.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
OUT = REPO / "benchmarks" / "out"

#: The thin U-Net the 6a/6b/6d comparisons were measured with (the quick profile's until session 3,
#: which widened it to 16..256 after the convergence diagnostics; the tables keep their network),
#: and the smoke profile's tiny one.
THIN_CHANNELS = (8, 16, 32, 64, 80, 80)
PAPER_POOLS = ((1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2))
TINY_CHANNELS = (4, 8, 16, 16)
TINY_POOLS = ((1, 2, 2), (2, 2, 2), (2, 2, 2))


def machine() -> str:
    """One line naming the machine: CPU model, cores, load, torch version, GPU if any."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, load average {load}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); {gpu}; Python {platform.python_version()}"
    )


def synthetic_mr(shape_zyx: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """An MR-like abdomen: body ellipse, a dozen organ-like ellipsoids of different intensity,
    smooth bias field, Rician noise. Float32, >= 0 (not normalised)."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape_zyx
    z, y, x = np.meshgrid(
        np.linspace(-1, 1, nz, dtype=np.float32),
        np.linspace(-1, 1, ny, dtype=np.float32),
        np.linspace(-1, 1, nx, dtype=np.float32),
        indexing="ij",
    )
    img = np.zeros(shape_zyx, np.float32)
    body = (y / 0.7) ** 2 + (x / 0.9) ** 2 < 1
    img[body] = 0.35
    for _ in range(12):
        c = rng.uniform([-0.7, -0.4, -0.6], [0.7, 0.4, 0.6])
        r = rng.uniform([0.15, 0.08, 0.08], [0.5, 0.25, 0.3])
        organ = ((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2 < 1
        img[organ & body] = rng.uniform(0.1, 1.0)
    bias = 1 + 0.25 * np.sin(1.3 * x + rng.uniform(0, 6)) * np.cos(0.9 * y + rng.uniform(0, 6))
    sig = img * bias
    noise = 0.03
    real = sig + rng.normal(0, noise, shape_zyx).astype(np.float32)
    imag = rng.normal(0, noise, shape_zyx).astype(np.float32)
    return np.sqrt(real**2 + imag**2).astype(np.float32)


def zscore(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr, np.float32)
    return ((arr - arr.mean()) / max(float(arr.std()), 1e-8)).astype(np.float32)


def phantom_cases(profile: str = "quick", role: str = "mr_val") -> list[tuple[Path, Path | None]]:
    """(image, label) paths of a generated phantom subset, or [] when the phantom is not generated."""
    try:
        from flarelib.config import compose_params
        from flarelib.paths import data_root

        params = compose_params(REPO / "params" / "runs" / "default.yaml", profile, "phantom")
        root = data_root(params)
        out = []
        for sub in params.data.subsets.values():
            if sub.role != role:
                continue
            pattern = sub.images.replace("{case}", "*")
            for img in sorted(root.glob(pattern)):
                case = img.name[: -len(Path(sub.images).name.replace("{case}", ""))]
                lab = root / sub.labels.replace("{case}", case) if sub.labels else None
                out.append((img, lab if lab is not None and lab.is_file() else None))
        return out
    except Exception:  # the phantom / params layout is not there yet
        return []


def bench_volume(
    shape_zyx: tuple[int, int, int],
    spacing_zyx: tuple[float, float, float],
    profile: str = "quick",
    seed: int = 0,
    prefer_phantom: bool = True,
) -> tuple[np.ndarray, str]:
    """A z-scored MR volume at ``spacing_zyx``: the first phantom MR validation case (resampled;
    ``shape_zyx`` ignored) when generated, else :func:`synthetic_mr` of ``shape_zyx``."""
    if prefer_phantom:
        cases = phantom_cases(profile)
        if cases:
            from flarelib.io import read_image, reorient_to_lps
            from flarelib.preprocess import resample

            vol, _ = reorient_to_lps(read_image(cases[0][0]))
            vol = resample(vol, spacing_zyx, is_label=False)
            return zscore(vol.array), f"phantom {cases[0][0].name} resampled to {vol.shape}"
    return zscore(synthetic_mr(shape_zyx, seed)), f"synthetic MR-like volume {tuple(shape_zyx)}"


def build_unet(channels, pools, num_classes: int = 14, seed: int = 0, block_style: str = "paper"):
    """A randomly initialised (He, seeded) U-Net in eval mode."""
    import torch

    from flarelib.models.unet import UNet3D

    return UNet3D(
        num_classes=num_classes,
        channels=channels,
        pool_zyx=pools,
        num_ds_heads=min(3, len(channels) - 2),
        block_style=block_style,
        generator=torch.Generator().manual_seed(seed),
    ).eval()


@dataclasses.dataclass
class NetSpec:
    """How a worker process rebuilds the network: constructor arguments + saved weights."""

    channels: tuple[int, ...]
    pools: tuple[tuple[int, int, int], ...]
    num_classes: int
    block_style: str
    weights: str  # path of a state_dict saved with torch.save

    def build(self):
        import torch

        net = build_unet(self.channels, self.pools, self.num_classes, 0, self.block_style)
        net.load_state_dict(torch.load(self.weights, weights_only=True))
        return net.eval()


def save_net(net, folder: Path) -> NetSpec:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "net.pt"
    torch.save(net.state_dict(), path)
    return NetSpec(tuple(net.channels), tuple(net.pool_zyx), net.num_classes, net.block_style, str(path))


def run_worker(
    script: Path,
    job: dict[str, Any],
    python: str = sys.executable,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``python script --worker JOB_JSON`` in a fresh process; its last stdout line is a JSON
    result."""
    proc = subprocess.run(
        [python, str(script), "--worker", json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"worker failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def agreement(logits_a: np.ndarray, logits_b: np.ndarray) -> dict[str, float]:
    """Max abs difference of softmax probabilities and argmax agreement (%) of two (C, z, y, x) logits."""
    import torch

    pa = torch.softmax(torch.from_numpy(np.asarray(logits_a, np.float32)), 0)
    pb = torch.softmax(torch.from_numpy(np.asarray(logits_b, np.float32)), 0)
    return {
        "max_abs_prob_diff": float((pa - pb).abs().max()),
        "max_abs_logit_diff": float(
            np.abs(np.asarray(logits_a, np.float32) - np.asarray(logits_b, np.float32)).max()
        ),
        "argmax_agreement_pct": float((pa.argmax(0) == pb.argmax(0)).float().mean() * 100),
    }


def write_report(name: str, text: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.md"
    path.write_text(text + "\n")
    return path


def synthetic_labeled_case(
    shape_zyx: tuple[int, int, int], spacing_zyx: tuple[float, float, float], seed: int = 0
):
    """(image, label) :class:`~flarelib.io.Volume` pair, identity direction: 13 ellipsoid "organs"
    with FLARE ids, each with its own MR-like intensity, bias field and Rician noise."""
    from flarelib.io import Volume

    rng = np.random.default_rng(seed)
    nz, ny, nx = shape_zyx
    z, y, x = np.meshgrid(
        np.linspace(-1, 1, nz, dtype=np.float32),
        np.linspace(-1, 1, ny, dtype=np.float32),
        np.linspace(-1, 1, nx, dtype=np.float32),
        indexing="ij",
    )
    label = np.zeros(shape_zyx, np.uint8)
    img = np.zeros(shape_zyx, np.float32)
    body = (y / 0.7) ** 2 + (x / 0.9) ** 2 < 1
    img[body] = 0.35
    for organ in range(1, 14):
        c = rng.uniform([-0.6, -0.4, -0.6], [0.6, 0.4, 0.6])
        r = rng.uniform([0.15, 0.08, 0.08], [0.45, 0.22, 0.25])
        mask = (((z - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((x - c[2]) / r[2]) ** 2 < 1) & body
        label[mask] = organ
        img[mask] = 0.1 + 0.9 * organ / 13
    bias = 1 + 0.2 * np.sin(1.3 * x + rng.uniform(0, 6))
    real = img * bias + rng.normal(0, 0.03, shape_zyx).astype(np.float32)
    imag = rng.normal(0, 0.03, shape_zyx).astype(np.float32)
    image = np.sqrt(real**2 + imag**2).astype(np.float32)
    origin = (0.0, 0.0, 0.0)
    return (Volume(image, spacing_zyx, origin, np.eye(3)), Volume(label, spacing_zyx, origin, np.eye(3)))
