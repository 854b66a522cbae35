# Shared by tools/dist_train.sh, dist_test.sh, slurm_train.sh and slurm_test.sh, which source it (it is not run by
# itself). Before sourcing, a launcher sets
#   LAUNCH_ARGS  its required arguments, e.g. (CONFIG NUM_PROCS)
#   LAUNCH_TOOL  the script it starts: train.py or test.py
# then calls launch_check_args before starting anything with launch_torchrun or launch_srun.

# Messages name the launcher the user called ($0 stays the caller's name in a sourced file).
LAUNCH_SCRIPT="tools/$(basename "$0")"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
# The project venv when there is one, else the python on PATH (an environment you prepared yourself).
PYTHON=${PYTHON:-$([ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python)}

# launch_usage dist|slurm: the launcher's usage, with the environment variables that kind of launcher reads.
launch_usage() {
    echo "usage: $LAUNCH_SCRIPT ${LAUNCH_ARGS[*]} [$LAUNCH_TOOL args...]"
    case "$1" in
        dist)
            echo "  NUM_PROCS: processes per node (GPUs; CPU processes with the gloo backend without CUDA)"
            echo "  environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500), PYTHON" ;;
        slurm)
            echo "  environment: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS, PYTHON" ;;
    esac
    echo "  $LAUNCH_TOOL's own options: python tools/$LAUNCH_TOOL --help"
}

# launch_check_args dist|slurm "$@": --help/-h in place of a required argument prints the usage and exits 0; too few
# arguments print the usage and one error (naming the required arguments: "A, B and C") and exit 2.
launch_check_args() {
    local kind=$1
    shift
    local needed=${#LAUNCH_ARGS[@]}
    local arg
    for arg in "${@:1:$needed}"; do
        case "$arg" in -h|--help) launch_usage "$kind"; exit 0 ;; esac
    done
    if [ $# -lt "$needed" ]; then
        launch_usage "$kind" >&2
        local names=${LAUNCH_ARGS[0]} i
        for ((i = 1; i < needed - 1; i++)); do names+=", ${LAUNCH_ARGS[i]}"; done
        names+=" and ${LAUNCH_ARGS[needed - 1]}"
        echo "error: $LAUNCH_SCRIPT needs $names, got $# argument(s)" >&2
        exit 2
    fi
}

# launch_torchrun NUM_PROCS TOOL_ARGS...: LAUNCH_TOOL on NUM_PROCS processes per node (NNODES, NODE_RANK,
# MASTER_ADDR, PORT from the environment).
launch_torchrun() {
    local nproc=$1
    shift
    if ! [[ "$nproc" =~ ^[1-9][0-9]*$ ]]; then
        echo "error: $LAUNCH_SCRIPT: NUM_PROCS must be a positive integer, got '$nproc'" >&2
        exit 2
    fi
    # Each CPU process would otherwise start one thread per core and oversubscribe the machine.
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    PYTHONPATH="$ROOT":${PYTHONPATH:-} \
    "$PYTHON" -m torch.distributed.run \
        --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --nproc_per_node="$nproc" --master_port="${PORT:-29500}" \
        "$HERE/$LAUNCH_TOOL" "$@"
}

# launch_srun PARTITION JOB_NAME TOOL_ARGS...: LAUNCH_TOOL as a Slurm job, one task per GPU (GPUS, GPUS_PER_NODE,
# CPUS_PER_TASK, SRUN_ARGS from the environment).
launch_srun() {
    local partition=$1 job_name=$2
    shift 2
    local gpus_per_node=${GPUS_PER_NODE:-8}
    # SRUN_ARGS stays unquoted: it holds several srun options.
    # shellcheck disable=SC2086
    PYTHONPATH="$ROOT":${PYTHONPATH:-} \
    srun -p "$partition" \
        --job-name="$job_name" \
        --gres=gpu:"$gpus_per_node" \
        --ntasks="${GPUS:-8}" \
        --ntasks-per-node="$gpus_per_node" \
        --cpus-per-task="${CPUS_PER_TASK:-5}" \
        --kill-on-bad-exit=1 \
        ${SRUN_ARGS:-} \
        "$PYTHON" -u "$HERE/$LAUNCH_TOOL" "$@"
}
