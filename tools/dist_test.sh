#!/usr/bin/env bash
# Distributed testing on one or more nodes with torchrun:
#   tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py args...]
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0-hostname PORT=29500 tools/dist_test.sh CONFIG CKPT 8 ...
# NUM_PROCS is the number of GPUs per node; on a machine without CUDA it is the number of CPU processes
# (gloo backend, chosen automatically by tools/test.py).
set -euo pipefail
LAUNCH_ARGS=(CONFIG CHECKPOINT NUM_PROCS)
LAUNCH_TOOL=test.py
# shellcheck source=tools/launch_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/launch_common.sh"
launch_check_args dist "$@"
launch_torchrun "$3" "$1" "$2" --launcher pytorch "${@:4}"
