"""Atomic file writes: write a temporary file in the target folder, fsync, then rename over the target."""
import os
import tempfile
import threading
from typing import BinaryIO, Callable, Tuple

import numpy as np

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``/proc/self/status``); elsewhere
    set and restored under a lock (the set/restore window would otherwise race with other writer threads)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def temporary_file(path: str) -> Tuple[int, str]:
    """``(fd, name)`` of a new temporary file next to ``path`` (to be renamed over it) with the permissions an
    ordinary ``open`` would give, ``0o666 & ~umask``: ``mkstemp`` makes it 0600, and the renamed file keeps
    that, so other accounts of a shared cluster could not read the labels. Every atomic writer uses this."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix=os.path.basename(path), dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    except BaseException:
        os.close(fd)
        os.remove(tmp)
        raise
    return fd, tmp


def atomic_write(path: str, write_fn: Callable[[BinaryIO], None]) -> None:
    """Readers (and a rerun after a kill) see either the old file or the complete new one, never a half file."""
    fd, tmp = temporary_file(path)
    try:
        with os.fdopen(fd, 'wb') as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_bytes(path: str, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_save_npy(path: str, array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, array, allow_pickle=False))


def worker_start_method() -> str:
    """'fork' where available: workers inherit the imported modules (the package import costs seconds) and
    only run numpy/file work, never CUDA. 'spawn' elsewhere."""
    import multiprocessing as mp
    return 'fork' if 'fork' in mp.get_all_start_methods() else 'spawn'
