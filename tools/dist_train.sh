#!/usr/bin/env bash
# Distributed training on one or more nodes with torchrun:
#   tools/dist_train.sh CONFIG NUM_PROCS [train.py args...]
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0-hostname PORT=29500 tools/dist_train.sh CONFIG 8 ...
# NUM_PROCS is the number of GPUs per node; on a machine without CUDA it is the number of CPU processes
# (gloo backend, chosen automatically by tools/train.py).
set -euo pipefail
LAUNCH_ARGS=(CONFIG NUM_PROCS)
LAUNCH_TOOL=train.py
# shellcheck source=tools/launch_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/launch_common.sh"
launch_check_args dist "$@"
launch_torchrun "$2" "$1" --launcher pytorch "${@:3}"
