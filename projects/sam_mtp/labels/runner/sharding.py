"""Splitting the label jobs over processes, GPUs and nodes.

Every item goes to shard ``crc32(key) % num_shards`` (a frame's key is ``"<scene>/<frame_id>"``, a scene
segment's its sample name): the assignment depends only on the item, not on the order or completeness of a
directory listing, so shards started on different nodes never overlap and together cover every item. Shards
need no communication; each is resumable on its own.
"""
import os
import zlib
from typing import Callable, List, Optional, Sequence, Tuple, TypeVar

import torch

T = TypeVar('T')


def shard_of(key: str, num_shards: int) -> int:
    """The shard (0..num_shards-1) that owns ``key``."""
    return zlib.crc32(key.encode()) % num_shards


def select_shard(records: Sequence[T], shard_index: int, num_shards: int,
                 key: Callable[[T], str] = lambda record: record.key) -> List[T]:
    """The records owned by one shard (``key(record)``: its shard key, default its ``key`` attribute), in their
    original order."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f'shard {shard_index}/{num_shards} is out of range (need 0 <= I < N)')
    return [r for r in records if shard_of(key(r), num_shards) == shard_index]


def parse_shard(text: str) -> Tuple[int, int]:
    """``"I/N"`` -> (I, N), 0-based."""
    try:
        index, total = (int(v) for v in text.split('/'))
    except ValueError:
        raise ValueError(f'--shard must look like I/N (e.g. 0/8), got {text!r}') from None
    if total < 1 or not 0 <= index < total:
        raise ValueError(f'--shard {text}: need 0 <= I < N')
    return index, total


def shard_from_env(launcher: str) -> Tuple[int, int]:
    """(rank, world size) of a launched process: ``pytorch`` reads RANK/WORLD_SIZE (torchrun), ``slurm``
    reads SLURM_PROCID/SLURM_NTASKS, ``none`` is (0, 1)."""
    names = {'pytorch': ('RANK', 'WORLD_SIZE'), 'slurm': ('SLURM_PROCID', 'SLURM_NTASKS')}
    if launcher == 'none':
        return 0, 1
    if launcher not in names:
        raise ValueError(f'unknown launcher {launcher!r}; use none, pytorch or slurm')
    rank_var, world_var = names[launcher]
    if rank_var not in os.environ or world_var not in os.environ:
        raise RuntimeError(f'launcher {launcher!r} needs {rank_var} and {world_var} in the environment '
                           f'(start with torchrun / srun)')
    rank, world = int(os.environ[rank_var]), int(os.environ[world_var])
    if not 0 <= rank < world:
        raise RuntimeError(f'{rank_var}={rank} is not below {world_var}={world}')
    return rank, world


def local_rank() -> Optional[int]:
    for var in ('LOCAL_RANK', 'SLURM_LOCALID'):
        if var in os.environ:
            return int(os.environ[var])
    return None


def resolve_device(device: str) -> torch.device:
    """``cuda`` means this process's GPU (``cuda:$LOCAL_RANK`` under torchrun/srun); a CUDA device on a machine
    without one is an error rather than a silent fall-back to a CPU run that would take weeks."""
    dev = torch.device(device)
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise RuntimeError(f'device {device!r} requested but CUDA is not available (set device="cpu" in the '
                               f'label config to run on the CPU)')
        if dev.index is None:
            rank = local_rank()
            dev = torch.device('cuda', (rank or 0) % torch.cuda.device_count())
    return dev
