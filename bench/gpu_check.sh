#!/usr/bin/env bash
# GPU check on one CUDA device, offline, in under 8 minutes (bench/gpu_check.py): training steps in bf16 and
# fp16 with GradScaler, encode throughput, faiss-gpu against the CPU, a short train / encode / evaluate equal
# to the CPU's; writes reports/gpu_check.json.
#   bash bench/gpu_check.sh [--steps N] [--texts N] [--out PATH]
# Exit: 0 no check failed, 1 a check failed, 3 no CUDA device (nothing run), 124 over GPU_CHECK_TIMEOUT (480 s).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 DVC_NO_ANALYTICS=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python
  [ -x .venv/bin/python ] && PYTHON=.venv/bin/python
fi
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "$PYTHON" bench/gpu_check.py "$@"
