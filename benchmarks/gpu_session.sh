#!/usr/bin/env bash
# One prepared GPU session (the device machine's 15 minutes; each step has its own time limit):
#   1. the CUDA-only tests (fp16 sliding window vs CPU fp32; NVML memory sampler);
#   2. issue 6 item 6: the paper-width model on a 256x256x80 MR volume (benchmarks/gpu_paper_width.py);
#   3. a quick-profile stage-1 MR model trained on the GPU: phantom, CycleGAN CT -> T1W, then Mean
#      Teacher on fake T1W + real T1W (flarelib train --stage cyclegan / stage1);
#   4. issue 6c with that model: speed/accuracy on the phantom MR validation set, fp32 vs fp16 (the
#      rest of the table, on CPU, is bench_speed_accuracy.py's default run);
#   5. the model's weights in float16, split into parts small enough to come back from the machine.
#
#   OUT=DIR bash benchmarks/gpu_session.sh                            # on a CUDA machine
#   OUT=DIR DEVICE=cpu PROFILE=smoke bash benchmarks/gpu_session.sh   # dry run of the plumbing here
# CHECKS=0 skips steps 1-2; CYCLEGAN_SET / STAGE1_SET add `--set KEY=VALUE` overrides to the trainings
# (e.g. CYCLEGAN_SET="--set cyclegan.epochs=60"); the fake T1W's organ intensities go to fake_mr.md.
#
# Wheels in .whl/ (SimpleITK, connected-components-3d: what the GPU image lacks) are installed first
# where those packages are missing.
set -u -o pipefail
: "${OUT:?set OUT to the folder for results}"
DEVICE=${DEVICE:-cuda}
CHECKS=${CHECKS:-1}
CYCLEGAN_SET=${CYCLEGAN_SET:-}
STAGE1_SET=${STAGE1_SET:-}
PROFILE=${PROFILE:-quick}
BUDGET=${BUDGET:-570}
START=$(date +%s)
left() { echo $((START + BUDGET - $(date +%s))); }
step() { echo; echo "== $* (t=$(($(date +%s) - START)) s, $(left) s left)"; }
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
if ! python3 -c "import SimpleITK, cc3d" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
flare() { python3 -m flarelib.cli "$@"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | head -3
python3 -c "import sys, torch, numpy; print(sys.version.split()[0], 'torch', torch.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())"
nproc

if [ "$CHECKS" = 1 ]; then
step "1. CUDA-only tests"
timeout 150 python3 -m pytest -q -p no:cacheprovider -rs tests/evaluate/test_efficiency.py tests/infer/test_sliding.py -k "nvml or cuda"

step "2. paper-width model, 256x256x80 MR"
if [ "$DEVICE" = cuda ]; then
    timeout 180 python3 benchmarks/gpu_paper_width.py --runs 3 --keep "$OUT"
else
    timeout 180 python3 benchmarks/gpu_paper_width.py --cpu-check --quick --keep "$OUT"
fi
fi

step "3a. phantom ($PROFILE)"
timeout 240 python3 -m flarelib.cli generate --profile "$PROFILE" --workers "$(nproc)" --no-progress || exit 1
python3 - "$PROFILE" <<'EOF'
import hashlib, sys
from pathlib import Path
import SimpleITK as sitk
# voxel digests of the validation images: the same phantom here and on the dev machine
for f in sorted(Path(f"data/phantom/{sys.argv[1]}/val_MRI/imagesVal").glob("*.nii.gz")):
    print(f.name, hashlib.md5(sitk.GetArrayFromImage(sitk.ReadImage(str(f))).tobytes()).hexdigest())
EOF
RUN=outputs/$PROFILE/default
step "3b. CycleGAN CT -> T1W"
timeout 240 python3 -m flarelib.cli train --profile "$PROFILE" --stage cyclegan --restart --device "$DEVICE" --no-progress --set train.num_workers=4 $CYCLEGAN_SET || exit 1
timeout 120 python3 benchmarks/diag_fake_mr.py --profile "$PROFILE" --device "$DEVICE" --out "$OUT/fake_mr.md"
step "3c. stage 1: Mean Teacher on fake T1W + real T1W"
# stopped at its limit, it keeps its best model so far (validated every train.validate_every iterations)
timeout $(($(left) - 120)) python3 -m flarelib.cli train --profile "$PROFILE" --stage stage1 --restart --device "$DEVICE" --no-progress --set train.num_workers=6 $STAGE1_SET
cat "$RUN/stage1/val_log.csv" || exit 1

step "5. the model in float16 parts"
python3 - "$RUN/stage1/model_best.pt" "$OUT" <<'EOF'
import io, sys
from pathlib import Path
import torch
ckpt = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
half = lambda sd: {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}  # noqa: E731
if "state_dict" in ckpt:
    ckpt["state_dict"] = half(ckpt["state_dict"])
else:
    ckpt["modules"] = {name: half(sd) for name, sd in ckpt["modules"].items()}
buf = io.BytesIO(); torch.save(ckpt, buf); data = buf.getvalue()
part = 15 * 2**20
for i in range(0, len(data), part):
    (Path(sys.argv[2]) / f"stage1_fp16.part{i // part}").write_bytes(data[i : i + part])
print("model", len(data), "bytes in", -(-len(data) // part), "parts; keys", sorted(ckpt))
EOF
tar -czf "$OUT/logs.tgz" "data/phantom/$PROFILE/val_MRI/imagesVal" "$RUN"/cyclegan/{train_log.csv,run.json,params.yaml} "$RUN"/stage1/{train_log.csv,val_log.csv,run.json,params.yaml}

step "4. speed/accuracy (6c) on the phantom MR validation set"
if [ "$DEVICE" = cuda ]; then
    timeout $(($(left) - 5)) python3 benchmarks/bench_speed_accuracy.py --model "$RUN/stage1/model_best.pt" \
        --profile "$PROFILE" --device cuda --steps rule --mirrors none 02 --precisions fp32 fp16
else
    timeout $(($(left) - 5)) python3 benchmarks/bench_speed_accuracy.py --model "$RUN/stage1/model_best.pt" \
        --profile "$PROFILE" --device cpu --precisions fp32 --steps rule --mirrors none --cases 1
fi
cp benchmarks/out/bench_speed_accuracy.md "$OUT/" 2>/dev/null
step "done"
