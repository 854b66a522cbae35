"""Packing of the GPU check's wheels (prepare.sh) and their unpacking on the GPU machine (run.sh).

    python dev/gpu_check/wheel_pack.py store WHEEL_DIR OUT_DIR       # each wheel re-zipped without compression
    python dev/gpu_check/wheel_pack.py extract-lsap SCIPY_DIR OUT    # scipy's _lsap module + licence

Wheels are zip files compressed member by member, so xz gains nothing on them; stored (uncompressed) zips of the
same members compress across files and packages: 62 MiB of wheels become about 40 MiB of wheels.tar.xz. The
members, their names and the RECORD hashes are unchanged, so pip installs the stored wheels as it would the
originals. Standard library only.
"""
import argparse
import copy
import glob
import json
import os
import re
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import List

ARCHIVE = 'wheels.tar.xz'


def store_wheels(src: Path, dst: Path) -> List[Path]:
    """Copy every wheel of ``src`` into ``dst`` as a stored (uncompressed) zip with the same members."""
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for wheel in sorted(Path(src).glob('*.whl')):
        target = dst / wheel.name
        with zipfile.ZipFile(wheel) as zin, zipfile.ZipFile(target, 'w', zipfile.ZIP_STORED) as zout:
            for info in zin.infolist():
                data = zin.read(info)
                stored = copy.copy(info)
                stored.compress_type = zipfile.ZIP_STORED
                zout.writestr(stored, data)
        out.append(target)
    return out


def unpack_wheels(archive: Path, dst: Path) -> List[Path]:
    """Extract ``wheels.tar.xz`` into ``dst`` once (a stamp records which archive); returns the wheels."""
    stamp = dst / '.unpacked'
    key = json.dumps([archive.name, archive.stat().st_size, int(archive.stat().st_mtime)])
    if not (stamp.exists() and stamp.read_text() == key):
        tmp = dst.with_name(dst.name + '.unpacking')
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with tarfile.open(archive, 'r:xz') as tar:
            members = tar.getmembers()
            for m in members:
                if not (m.isfile() or m.isdir()) or m.name.startswith('/') or '..' in Path(m.name).parts:
                    raise RuntimeError(f'{archive}: unexpected member {m.name!r}')
            tar.extractall(tmp, members=members)
        shutil.rmtree(dst, ignore_errors=True)
        tmp.rename(dst)
        stamp.write_text(key)
    return sorted(dst.rglob('*.whl'))


def extract_lsap(scipy_dir: Path, out: Path) -> List[Path]:
    """scipy's compiled linear-sum-assignment module and its licence files, from the scipy wheel in
    ``scipy_dir``, into ``out`` (with a SOURCE file naming the wheel)."""
    (wheel, ) = glob.glob(os.path.join(scipy_dir, 'scipy-*.whl'))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if re.fullmatch(r'scipy/optimize/_lsap\.[^/]*\.so', n)
                 or re.fullmatch(r'scipy-[^/]*\.dist-info/(licenses/)?LICENSE[^/]*', n)]
        if not any(n.endswith('.so') for n in names):
            raise SystemExit(f'{wheel} has no scipy/optimize/_lsap*.so')
        for name in names:
            path = out / os.path.basename(name)
            path.write_bytes(z.read(name))
            written.append(path)
    (out / 'SOURCE').write_text(os.path.basename(wheel) + '\n')
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    store = sub.add_parser('store')
    store.add_argument('src', type=Path)
    store.add_argument('dst', type=Path)
    lsap = sub.add_parser('extract-lsap')
    lsap.add_argument('src', type=Path)
    lsap.add_argument('dst', type=Path)
    args = parser.parse_args(argv)
    if args.command == 'store':
        print(f'{len(store_wheels(args.src, args.dst))} wheels stored in {args.dst}')
    else:
        print(f'{len(extract_lsap(args.src, args.dst))} files in {args.dst}')


if __name__ == '__main__':
    main(sys.argv[1:])
