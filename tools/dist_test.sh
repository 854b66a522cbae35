#!/usr/bin/env bash
# Distributed testing on one or more nodes with torchrun:
#   tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py args...]
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0-hostname PORT=29500 tools/dist_test.sh CONFIG CKPT 8 ...
# NUM_PROCS is the number of GPUs per node; on a machine without CUDA it is the number of CPU processes
# (gloo backend, chosen automatically by tools/test.py).
set -euo pipefail
usage() {
    echo "usage: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py args...]"
    echo "  NUM_PROCS: processes per node (GPUs; CPU processes with the gloo backend without CUDA)"
    echo "  environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500), PYTHON"
    echo "  test.py's own options: python tools/test.py --help"
}
for arg in "${@:1:3}"; do
    case "$arg" in -h|--help) usage; exit 0 ;; esac
done
if [ $# -lt 3 ]; then
    usage >&2
    echo "error: tools/dist_test.sh needs CONFIG, CHECKPOINT and NUM_PROCS, got $# argument(s)" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
if ! [[ "$NPROC" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: tools/dist_test.sh: NUM_PROCS must be a positive integer, got '$NPROC'" >&2
    exit 2
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
# The project venv when there is one, else the python on PATH (an environment you prepared yourself).
PYTHON=${PYTHON:-$([ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python)}
# Each CPU process would otherwise start one thread per core and oversubscribe the machine.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PYTHONPATH="$ROOT":${PYTHONPATH:-} \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" --master_port="$PORT" \
    "$HERE/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
