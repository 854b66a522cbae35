#!/usr/bin/env bash
# Testing under Slurm (one task per GPU):
#   GPUS=8 tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]
set -euo pipefail
LAUNCH_ARGS=(PARTITION JOB_NAME CONFIG CHECKPOINT)
LAUNCH_TOOL=test.py
# shellcheck source=tools/launch_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/launch_common.sh"
launch_check_args slurm "$@"
launch_srun "$1" "$2" "$3" "$4" --launcher="slurm" "${@:5}"
