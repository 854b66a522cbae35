"""Where a measurement was made: the machine's CPU and memory, and the checkout's commit.

Reports, benchmark JSON and label statistics carry these so that every number in the docs names its machine and
commit; one implementation keeps their fields alike.
"""
import os
import platform
import subprocess
from typing import Optional, Tuple

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            return next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), cpu)
    except OSError:
        return cpu


def memory_gib() -> Optional[float]:
    """Physical memory in GiB (one decimal), None where the OS does not say."""
    try:
        return round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def git_commit(short: bool = False, where: str = PACKAGE_ROOT) -> Tuple[Optional[str], Optional[bool]]:
    """(hash of HEAD, whether tracked files differ from it) of the checkout holding ``where``; (None, None)
    outside a git checkout (an installed package)."""
    def git(*cmd):
        try:
            return subprocess.run(['git', '-C', where, *cmd], capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    sha = git('rev-parse', *(['--short'] if short else []), 'HEAD') or None
    status = git('status', '--porcelain', '--untracked-files=no') if sha else None
    return sha, (bool(status) if status is not None else None)
