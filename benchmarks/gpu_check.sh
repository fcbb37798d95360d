#!/usr/bin/env bash
# The GPU check: on a CUDA machine with the project installed (make install), in about 2-5 min:
#   1. the device tests on CUDA (tests/test_devices.py: the CPU's results on the GPU, L-BFGS in
#      the box on the device, the memory estimate against torch.cuda.max_memory_allocated), and the
#      optimiser's and losses' unit tests;
#   2. benchmarks/gpu_check.py: 300 steps at 512 px in float32 and bfloat16 autocast, the memory
#      estimate against the measured peak, the panel's loop with a mid-run ratio change, and chapter
#      4's two-region luminance-only transfer (masks made on the host), as one table.
# Usage: bash benchmarks/gpu_check.sh [PYTHON]   (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA GPU here')"
timeout 240 "$PY" -m pytest -q -p no:cacheprovider -m "not browser" \
    tests/test_devices.py tests/test_lbfgsb.py tests/test_losses.py tests/test_optimize.py
timeout 300 "$PY" -m benchmarks.gpu_check
