#!/usr/bin/env bash
# GPU throughput check (issue 8): does evaluation keep a GPU busy?
#
# Runs on a bare GPU machine: Python 3.10+ with torch and torchvision (a CUDA build; they bring
# Pillow and numpy). Nothing else from the project is needed, nothing is downloaded, no network.
# Under 8 minutes on one GPU (each part runs under `timeout`). From the repository root:
#
#   bash benchmarks/gpu_check.sh                 # the check
#   QUICK=1 bash benchmarks/gpu_check.sh         # dry run on the CPU: tiny model, 96 images (~1 min)
#   PYTHON=/opt/py312/bin/python bash benchmarks/gpu_check.sh
#
# What it does, all in one run: writes 8,192 JPEGs of 256 px (quality 90) to a temporary folder and
# builds a ViT-L/14 image tower (CLIP's shape: width 1024, 24 layers, 257 tokens at 224 px, random
# init, which is all throughput needs; built from torch.nn because open_clip would need wheels this
# machine lacks). It then measures, in bf16 autocast at batch 256, like `bench run --precision bf16`:
#   - bare forward: a ready batch already on the GPU, scores copied back each batch (the runner does);
#   - predict: the same loop fed by a DataLoader over the files (workers = cores - 1, pinned memory,
#     prefetch 2), with (a) CPU decode by the project's own PIL path and eval transform, (b) CPU
#     torchvision decode_jpeg + resize/crop on uint8 in the workers, normalised on the GPU, (c)
#     decode_jpeg on the GPU (nvjpeg, a batch at once) + transforms v2 there, (d) PIL, 0 workers
#     (the old default);
#   - each data path alone, and how far the tensor paths' pixels are from the PIL path's;
#   - with 2+ GPUs: the same with 2 processes (torchrun, one GPU each, DistributedSampler).
# The project's transform (bench/plugin/transforms.py) imports with torch/torchvision alone and is used as
# is; its decoder (bench/data/base.py) imports pandas, so without pandas the script mirrors it (PIL
# open, load, convert RGB) and says so in its output.
#
# Report: the whole printed block (device, settings, img/s, ratios predict/bare for CPU and GPU
# decode, pixel differences, the 2-process lines). Roughly expected on an H100/H200 with 16 cores:
# bare 2,500-4,500 img/s; PIL with 15 workers data-bound near 3,000-5,000 img/s (ratio 0.7-1.0);
# decode_jpeg on CPU faster than PIL; GPU decode ratio >= 0.9; 0 workers about 0.1; 2 processes
# about 2x bare. Figures far from these are worth a note (CPU count, thermal limits, other jobs).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
py=${PYTHON:-python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$work"' EXIT
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

args=(--dir "$work")
if [[ "${QUICK:-0}" == "1" ]]; then
    args+=(--dry-run --files 96 --repeat 1 --batch-size 16 --size 64 --bare-batches 3 --max-seconds 20)
fi

"$py" -c 'import sys, torch, torchvision; print("python", sys.version.split()[0], "| torch", torch.__version__,
"| torchvision", torchvision.__version__, "| cuda", torch.version.cuda, "| GPUs", torch.cuda.device_count())'
command -v nvidia-smi >/dev/null && nvidia-smi -L || true
# DataLoader workers hand batches over in /dev/shm; a small one (containers: 64 MB) makes them fail.
df -h /dev/shm 2>/dev/null | tail -1 | awk '{print "/dev/shm", $2, "(workers need a few GB)"}' || true
start=$SECONDS
timeout 320 "$py" "$here/gpu_check.py" "${args[@]}"
gpus=$("$py" -c 'import torch; print(torch.cuda.device_count())')
# The dry run takes the 2-process path on the CPU (gloo) so that it is proven before a GPU is at hand.
if [[ "$gpus" -ge 2 || "${QUICK:-0}" == "1" ]]; then
    timeout 120 "$py" -m torch.distributed.run --standalone --nproc_per_node 2 "$here/gpu_check.py" \
        "${args[@]}" --distributed
else
    echo "one GPU: the 2-process part is skipped"
fi
echo "=== gpu_check figures ($((SECONDS - start)) s) ==="
"$py" "$here/gpu_check.py" "${args[@]}" --report
