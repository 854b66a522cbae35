#!/usr/bin/env bash
# Create (or reuse) the project-local virtual environment with the pinned, tested stack.
#
#   bash tools/setup_env.sh            # idempotent: a second run takes seconds
#
# Environment variables:
#   SAM_MTP_VENV   where the venv lives            (default: <repo>/.venv)
#   SAM_MTP_CACHE  cache for the built mmcv wheel  (default: ${XDG_CACHE_HOME:-~/.cache}/sam_mtp)
#   PYTHON         interpreter that creates the venv (default: python3)
#   SAM_MTP_NO_LOCK=1  resolve afresh instead of installing requirements/lock.txt's versions (to refresh the lock:
#                  see dev/update_lock.py)
#
# Every pip install runs with requirements/lock.txt as its constraints file: every package, transitive
# dependencies and build tools included, gets the version recorded there, so a fresh install next month equals
# today's.
# The mmcv 2.1.0 wheel is built from its sdist once (about 7 minutes on 2 cores, CPU ops only) and kept in
# the cache outside the repository, keyed by the torch and Python versions, so that fresh clones and CI
# reruns reinstall it in seconds. GPU clusters: see README "Install on a GPU cluster".
set -euo pipefail

case "${1:-}" in
    "") ;;
    -h|--help)
        # The header comment above is the usage.
        echo "usage: bash tools/setup_env.sh [--help]"
        sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0 ;;
    *)
        echo "error: tools/setup_env.sh takes no arguments (got '$1'); see tools/setup_env.sh --help" >&2
        exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SAM_MTP_VENV:-$ROOT/.venv}"
CACHE="${SAM_MTP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sam_mtp}"
PYTHON="${PYTHON:-python3}"
REQ="$ROOT/requirements"
STAMP="$VENV/.sam_mtp_stack"
MMCV_VERSION=2.1.0
N_STEPS=7

say() { echo "[setup] $*"; }
fail() {
    # $1: the step that failed, $2: what to do about it.
    echo "" >&2
    echo "[setup] FAILED at step: $1" >&2
    echo "[setup] what to do: $2" >&2
    echo "[setup] full pip output is in $LOG" >&2
    exit 1
}

fingerprint() {
    { cat "$REQ"/*.txt "$ROOT/tools/setup_env.sh"; echo "no-lock=${SAM_MTP_NO_LOCK:-0}"; } | sha256sum | cut -d' ' -f1
}

IMPORT_CHECK='import torch, torchvision, torchvision.ops, mmengine, mmcv.ops, mmdet, mmdet3d.models, mmdet3d.evaluation, mmpretrain.models, segment_anything, numpy'

want="$(fingerprint)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && \
        "$VENV/bin/python" -c "$IMPORT_CHECK" >/dev/null 2>&1; then
    say "environment $VENV is up to date"
    exit 0
fi

mkdir -p "$CACHE"
LOG="$CACHE/setup.log"
: > "$LOG"
LOCK_ARGS=(-c "$REQ/lock.txt")
[ "${SAM_MTP_NO_LOCK:-0}" = 1 ] && LOCK_ARGS=()
pip_q() { "$VENV/bin/python" -m pip install --disable-pip-version-check "${LOCK_ARGS[@]}" "$@" >>"$LOG" 2>&1; }
t0=$(date +%s)

say "[1/$N_STEPS] virtual environment at $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    command -v "$PYTHON" >/dev/null || fail "create venv" "install Python 3.10-3.11 or set PYTHON=/path/to/python3"
    "$PYTHON" -m venv "$VENV" >>"$LOG" 2>&1 || fail "create venv" "check that the venv module is installed (apt-get install python3-venv)"
fi
pip_q --upgrade -r "$REQ/build.txt" || fail "build tools" "check network access to the package index"

say "[2/$N_STEPS] torch + torchvision ($(grep -v '^#' "$REQ/torch.txt" | tr '\n' ' '))"
# Pinned explicitly: an unpinned torchvision drags in the newest torch with GBs of CUDA packages.
pip_q -r "$REQ/torch.txt" || fail "torch" "the pinned torch/torchvision pair must be available from your index"
"$VENV/bin/python" -c 'import torchvision.ops' >>"$LOG" 2>&1 || \
    fail "torch" "torchvision cannot load its ops with this torch build; keep the pair in requirements/torch.txt"

say "[3/$N_STEPS] numpy, mmengine"
pip_q "$(grep '^numpy' "$REQ/runtime.txt")" "$(grep '^mmengine' "$REQ/runtime.txt")" || fail "mmengine" "see the log"

say "[4/$N_STEPS] mmcv $MMCV_VERSION with ops (cached wheel, or a ~7 minute build on 2 cores)"
PYTAG="$("$VENV/bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
TORCHV="$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')"
WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-torch$TORCHV-$PYTAG"
if ! "$VENV/bin/python" -c 'import mmcv.ops, mmcv; assert mmcv.__version__ == "'$MMCV_VERSION'"' >/dev/null 2>&1; then
    if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
        say "      building mmcv from source (log: $LOG)"
        mkdir -p "$WHEEL_DIR.tmp"
        MMCV_WITH_OPS=1 FORCE_CUDA="${FORCE_CUDA:-0}" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            "$VENV/bin/python" -m pip wheel --no-build-isolation --no-deps "mmcv==$MMCV_VERSION" \
            -w "$WHEEL_DIR.tmp" >>"$LOG" 2>&1 || \
            fail "mmcv build" "a C++ compiler (gcc/g++) and Python headers are needed; on GPU machines see README"
        # Rename only a finished build into place: an interrupted build never poisons the cache.
        rm -rf "$WHEEL_DIR" && mv "$WHEEL_DIR.tmp" "$WHEEL_DIR"
    else
        say "      reusing cached wheel $(ls "$WHEEL_DIR"/mmcv-*.whl)"
    fi
    pip_q "$WHEEL_DIR"/mmcv-*.whl || fail "mmcv install" "delete $WHEEL_DIR and rerun to rebuild the wheel"
fi

say "[5/$N_STEPS] mmdet, mmpretrain, segment-anything and mmdet3d's runtime dependencies"
pip_q -r "$REQ/runtime.txt" || fail "runtime dependencies" "see the log"

say "[6/$N_STEPS] mmdet3d 1.4.0, nuscenes-devkit, lyft_dataset_sdk (--no-deps)"
pip_q --no-deps -r "$REQ/nodeps.txt" || fail "mmdet3d" "see the log"

say "[7/$N_STEPS] test tools and this package (editable)"
pip_q -r "$REQ/tests.txt" || fail "test tools" "see the log"
pip_q --no-deps --no-build-isolation -e "$ROOT" || fail "sam_mtp" "see the log"

"$VENV/bin/python" -c "$IMPORT_CHECK" >>"$LOG" 2>&1 || \
    fail "import check" "a package of the stack does not import; the log ends with the traceback"
echo "$want" > "$STAMP"
say "done in $(( $(date +%s) - t0 )) s; activate with: source $VENV/bin/activate"
