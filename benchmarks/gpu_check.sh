#!/usr/bin/env bash
# GPU proof for fedray (at most 8 minutes on one GPU): the assembled model with 1, 2 and 4 client actors
# per GPU, DeepSpeed ZeRO-2 and ZeRO-3 over nccl, bf16, per-actor memory caps; prints samples/s per
# configuration and peak memory per actor. What each configuration is: benchmarks/gpu_check.py.
#
#   benchmarks/gpu_check.sh                  # needs an NVIDIA GPU and fedray's dependencies installed
#   benchmarks/gpu_check.sh --dry-run        # anywhere: write and validate every scenario, run nothing
#   benchmarks/gpu_check.sh --only torch-1,zero3-1 --out /tmp/gpu-check
#
# Real weights come from $FEDRAY_ASSETS (`make assets-real`); without them (a GPU machine has no network)
# a randomly initialised model of the same architecture stands in, and the output says so.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python3}"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

fail() { echo "gpu_check: $*" >&2; exit 2; }

dry_run=0
for arg in "$@"; do [[ "$arg" == "--dry-run" ]] && dry_run=1; done

missing="$("$py" - <<'PY'
import importlib.util
need = ["torch", "ray", "transformers", "peft", "pyarrow", "psutil", "yaml", "sklearn"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
PY
)" || fail "cannot run $py; set PYTHON to the interpreter that has fedray's dependencies"
[[ -z "$missing" ]] || fail "missing Python packages: $missing (install fedray's dependencies: pip install -e .)"

if [[ $dry_run -eq 0 ]]; then
  command -v nvidia-smi >/dev/null 2>&1 \
    || fail "no GPU visible: nvidia-smi is not installed here. Run this on a machine with an NVIDIA GPU" \
            "(or pass --dry-run to only validate the scenarios)"
  gpus="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | wc -l)" || gpus=0
  [[ "$gpus" -ge 1 ]] || fail "no GPU visible: nvidia-smi lists no device (check CUDA_VISIBLE_DEVICES and the driver)"
  "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
    || fail "nvidia-smi sees $gpus GPU(s) but torch cannot use CUDA (a CPU-only torch wheel?); install a CUDA build of torch"
  "$py" -c 'import deepspeed' >/dev/null 2>&1 \
    || fail "deepspeed is not installed: the ZeRO configurations need it (pip install deepspeed==0.19.8)"
fi

# 8 minutes in all: 450 s of runs (the script stops starting new ones past it) plus set-up, hard-stopped.
exec timeout --signal=TERM --kill-after=20 480 "$py" "$repo/benchmarks/gpu_check.py" "$@"
