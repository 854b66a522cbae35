#!/usr/bin/env bash
# The GPU check (docs/gpu_check.md). On the GPU machine, from the repository root, with prepare.sh's .whl/:
#   bash tools/gpu_check/run.sh --phase build        # offline install + mmcv's ops for this GPU (cached in $TMPDIR)
#   bash tools/gpu_check/run.sh --phase test,bench   # CUDA tests, paper-size timings; gpu_report.json/.md in $OUT
# An environment that already has the stack:  bash tools/gpu_check/run.sh --phase test --python .venv/bin/python
# `--help` lists every option (phases, budgets, --mmcv auto|cuda|cpu|installed, --kernels point|all).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PYTHON:-python3}"
# --python also runs this driver (it needs only the standard library).
prev=""
for arg in "$@"; do
    case "$arg" in --python=*) PY="${arg#--python=}" ;; esac
    [ "$prev" = "--python" ] && PY="$arg"
    prev="$arg"
done
cd "$ROOT"
exec "$PY" tools/gpu_check/gpu_check.py "$@"
