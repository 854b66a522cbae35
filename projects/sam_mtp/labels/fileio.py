"""Atomic file writes: write a temporary file in the target folder, fsync, then rename over the target."""
import os
import tempfile
from typing import BinaryIO, Callable

import numpy as np


def atomic_write(path: str, write_fn: Callable[[BinaryIO], None]) -> None:
    """Readers (and a rerun after a kill) see either the old file or the complete new one, never a half file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix=os.path.basename(path), dir=folder)
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
