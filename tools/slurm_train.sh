#!/usr/bin/env bash
# Training under Slurm (one task per GPU):
#   GPUS=16 GPUS_PER_NODE=8 tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
set -euo pipefail
LAUNCH_ARGS=(PARTITION JOB_NAME CONFIG WORK_DIR)
LAUNCH_TOOL=train.py
# shellcheck source=tools/launch_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/launch_common.sh"
launch_check_args slurm "$@"
launch_srun "$1" "$2" "$3" --work-dir="$4" --launcher="slurm" "${@:5}"
