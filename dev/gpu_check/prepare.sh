#!/usr/bin/env bash
# Download, on a machine with registry access, everything the GPU check installs offline on the GPU machine
# (docs/gpu_check.md) into .whl/ (git-ignored; carry it along):
#   - every wheel of dev/gpu_check/wheels.txt, for CPython 3.12 manylinux x86-64 (pure-Python wheels as they
#     are), packed into wheels.tar.xz: each wheel re-zipped without compression (the same files, so the same
#     RECORD hashes) so that xz compresses across them, about 40 MiB instead of 62;
#   - mmcv's 2.1.0 sdist (built on the GPU machine against its torch, for its GPU);
#   - scipy's linear-sum-assignment extension module and licence (3DETR's Hungarian matching), taken from the
#     scipy wheel pinned below: the full scipy wheel (35 MB) does not fit;
# and prints the total size: the tree that travels to the GPU machine is capped at 64 MiB.
#
#   bash dev/gpu_check/prepare.sh [--dest DIR] [--python-version 3.12]
#
# --python-version 3.11 fetches the same pins for this project's CPU machines, to rehearse the offline install
# here (run.sh --python <a Python with torch only>). Reruns reuse pip's cache; the folder is replaced atomically.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/dev/gpu_check"
DEST="$ROOT/.whl"
PY_VERSION=3.12
MMCV_SDIST="mmcv==2.1.0"
SCIPY_FOR_LSAP="scipy==1.17.1"  # the version this project tests with
LIMIT_MIB=55

while [ $# -gt 0 ]; do
    case "$1" in
        --dest) DEST="$2"; shift 2 ;;
        --python-version) PY_VERSION="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "prepare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { echo "[prepare] $*"; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# A throw-away pip that can read mmcv's sdist metadata (needs `wheel` and a setuptools with pkg_resources).
say "helper venv in $WORK"
python3 -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
"$PY" -m pip install -q --disable-pip-version-check --upgrade pip "setuptools<70" wheel
PIP=("$PY" -m pip download --no-deps --disable-pip-version-check -q)
TARGET=(--only-binary=:all: --python-version "$PY_VERSION" --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

NEW="$WORK/new"
mkdir -p "$NEW" "$WORK/whl" "$WORK/stored"
mapfile -t PINS < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$HERE/wheels.txt" | grep -v '^$')
say "${#PINS[@]} wheels for CPython $PY_VERSION manylinux x86-64"
for pin in "${PINS[@]}"; do
    "${PIP[@]}" "${TARGET[@]}" -d "$WORK/whl" "$pin" || { echo "[prepare] FAILED: $pin" >&2; exit 1; }
done
say "packing them into wheels.tar.xz ($(du -sm "$WORK/whl" | cut -f1) MiB of wheels)"
"$PY" "$HERE/wheel_pack.py" store "$WORK/whl" "$WORK/stored"
if command -v xz >/dev/null; then
    tar -C "$WORK/stored" -cf - . | xz -T0 -6 > "$NEW/wheels.tar.xz"
else
    "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[2], "w:xz").add(sys.argv[1], ".")' \
        "$WORK/stored" "$NEW/wheels.tar.xz"
fi

say "$MMCV_SDIST sdist"
"${PIP[@]}" --no-binary :all: --no-build-isolation -d "$NEW" "$MMCV_SDIST"

say "scipy's linear_sum_assignment from $SCIPY_FOR_LSAP"
"${PIP[@]}" "${TARGET[@]}" -d "$WORK/scipy" "$SCIPY_FOR_LSAP"
"$PY" "$HERE/wheel_pack.py" extract-lsap "$WORK/scipy" "$NEW/scipy_lsap"

# Replace the folder only now, so an interrupted run leaves the previous one intact.
rm -rf "$DEST.old"
[ -d "$DEST" ] && mv "$DEST" "$DEST.old"
mkdir -p "$(dirname "$DEST")"
mv "$NEW" "$DEST"
rm -rf "$DEST.old"

BYTES=$(du -sb "$DEST" | cut -f1)
MIB=$(awk -v b="$BYTES" 'BEGIN { printf "%.1f", b / 1048576 }')
say "$(ls "$WORK/whl" | wc -l) wheels, mmcv's sdist and scipy's LSAP module in $DEST: $MIB MiB"
if awk -v m="$MIB" -v l="$LIMIT_MIB" 'BEGIN { exit !(m > l) }'; then
    echo "[prepare] $DEST is $MIB MiB, over the $LIMIT_MIB MiB the GPU machine's 64 MiB tree leaves for it" >&2
    exit 1
fi
