"""Benchmark: registration + label transfer of one LLD-MMR-like patient's 7 sequences (stage 2).

    python benchmarks/bench_transfer.py [--profile quick] [--patient MR-0001] [--repeats 3]

Reads the phantom of the profile (generated when missing), takes the patient's TRUE T1W label as the
T1W pseudo-label, and times :func:`flarelib.pseudolabel.transfer.transfer_patient` in this one
process (reading the 8 volumes excluded; registration, resampling, the kidney filter and the label
transfer included): median of ``--repeats`` runs, with the per-sequence registration seconds of the
last run. Prints the machine, the 1-minute load average before and after, and the result; the issue's
budget is 30 s on 2 cores at the quick profile.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flarelib.config import compose_params  # noqa: E402
from flarelib.data.layout import discover, lld_patients  # noqa: E402
from flarelib.datasets import ensure_data  # noqa: E402
from flarelib.io import read_image, read_label  # noqa: E402
from flarelib.pseudolabel.transfer import transfer_patient  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    ap.add_argument("--patient", default=None, help="patient id (default: the first)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    os.chdir(REPO)
    params = compose_params(REPO / "params" / "runs" / "default.yaml", args.profile, "phantom")
    root = ensure_data(params)
    subset = next(n for n, s in params.data.subsets.items() if s.role == "mr_lld")
    patients = lld_patients(discover(params)[subset])
    pid = args.patient or next(iter(patients))
    seqs = patients[pid]
    volumes = {s: read_image(c.image) for s, c in seqs.items()}
    label = read_label(root / "diagnostics" / "labels" / subset / f"{seqs['T1W'].case_id}.nii.gz")
    load_before = os.getloadavg()[0]
    times, res = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = transfer_patient(
            volumes,
            label,
            params.transfer,
            params.registration,
            patient=pid,
            fix_zflip=params.preprocess.fix_zflip,
        )
        times.append(time.perf_counter() - t0)
    load_after = os.getloadavg()[0]
    print(f"## Label transfer of one patient ({args.profile} profile, {pid}, {len(volumes)} volumes)")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}"
    )
    print(f"load average (1 min) before {load_before:.2f}, after {load_after:.2f}")
    shapes = ", ".join(f"{s} {tuple(v.shape)}" for s, v in volumes.items())
    print(f"volumes (z, y, x): {shapes}")
    print(
        f"transfer_patient: median {statistics.median(times):.1f} s over {len(times)} runs "
        f"({', '.join(f'{t:.1f}' for t in times)}); budget 30 s"
    )
    for r in res.records:
        dsc = "" if r.dsc_right is None else f" kidney DSC {r.dsc_right:.2f}/{r.dsc_left:.2f}"
        print(
            f"  {r.sequence:4s} {r.decision:9s} registration {r.registration:11s} "
            f"{r.registration_seconds:5.1f} s{dsc}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
