"""Stage 3 of a finished run again, with another anatomy-filter rule, from the same stage-2 model.

The paper drops a pseudo-label whole when any constraint (6)-(8) fails (``anatomy.on_failure:
drop_case``); ``drop_organs`` keeps the case and leaves only its failing organs unannotated. This
reruns ``study.stage3`` of ``--run`` (its resolved params from ``outputs/<profile>/<run>/04_stage3``,
with ``--set`` changes on top) from that run's own stage-2 model, exactly as ``04_stage3`` runs it
(:func:`flarelib.study.selftrain.run_iterations`; iterations stored under
``outputs/<profile>/_shared/stage3-<key>/``, reused when done), and prints each iteration's kept
pseudo-labels, annotated organs and validation DSC/NSD beside the run's own.
Time: one stage-3 iteration at the quick profile is about 4.5 minutes on 2 cores.

    python benchmarks/diag_stage3_on_failure.py --run proposed --set anatomy.on_failure=drop_organs
"""

import argparse
import json

import numpy as np

from flarelib.config import load_params, parse_overrides
from flarelib.study.flow import read_metrics, stage_output
from flarelib.study.selftrain import run_iterations


def annotated_organs(record: dict) -> float:
    """Mean number of organs a kept pseudo-label trains (13 minus its failing organs)."""
    checks = [v for v in record.get("anatomy", {}).values()]
    if not checks:
        return float("nan")
    return float(np.mean([13 - len(v.get("failing_organs", [])) for v in checks]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="proposed")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    folder = stage_output(args.profile, args.run, "04_stage3")
    params = load_params(folder / "params.yaml", parse_overrides(args.set) or None)
    stage2 = stage_output(args.profile, args.run, "03_stage2")
    stage2_model = stage2 / read_metrics(args.profile, args.run, "03_stage2")["model"]
    own = json.loads((folder / "metrics.json").read_text())["iterations"]
    shared, records = run_iterations(params, args.profile, stage2_model)
    print(f"\n{args.run}, anatomy.on_failure={params.anatomy.on_failure}; iterations in {shared}")
    print("iter  kept/68  organs/case  val DSC  val NSD   (the run's own: kept, DSC)")
    for r, o in zip(records, own, strict=False):
        print(
            f"{r['iteration']:>4}  {r['kept']:>4}/{r['kept'] + r['dropped']:<3}  {annotated_organs(r):>11.1f}"
            f"  {100 * r['val_mean_dsc']:7.1f}  {100 * r['val_mean_nsd']:7.1f}"
            f"   ({o['kept']}, {100 * o['val_mean_dsc']:.1f})"
        )


if __name__ == "__main__":
    main()
