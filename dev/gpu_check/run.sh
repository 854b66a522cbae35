#!/usr/bin/env bash
# The GPU check (docs/gpu_check.md). On the GPU machine, from the repository root, with prepare.sh's .whl/:
#   bash dev/gpu_check/run.sh --phase build,bench,test --mmcv cpu   # the one-call plan: install + mmcv's CPU ops,
#                                                                      # timings, then the CUDA tests in the time left
# Everything goes to $OUT: gpu_report.json/.md, test_outcomes.jsonl (one line per finished test),
# gpu_check_logs.tar.gz; the call ends within --budget-total (560 s), kills included.
# An environment that already has the stack:  bash dev/gpu_check/run.sh --phase bench,test --python .venv/bin/python
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
exec "$PY" dev/gpu_check/gpu_check.py "$@"
