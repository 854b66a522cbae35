"""How the tools' CPU threads wait: the environment defaults that keep a training job from losing far more time than
the share of the CPU other processes take.

PyTorch's intra-op threads are OpenMP threads of the libgomp it bundles. By default libgomp lets a thread that
has finished its part of an operation spin for a while before it sleeps. On a quiet machine that saves a wake-up;
on a shared one the spinning threads burn the job's share of the cores while the thread they wait for is not
running, and the many small operations of a training step each pay for it (the demo went from 10 to 44 minutes
beside a few ``nice 19`` processes, issue 20). ``OMP_WAIT_POLICY=PASSIVE`` makes them sleep at once. It changes
when threads wait, never how work is split, so results stay bit-identical (benchmarks/bench_shared_cpu.py checks
the stage-1 losses).

Thread counts are left alone: torch's default (one per core) gives the same reductions as before, DataLoader
workers already run one torch thread each (torch sets it in every worker), the numba kernels of
:mod:`projects.sam_mtp.ops` run on ``torch.get_num_threads()`` Python threads that block while idle, and numba's
own parallel thread pool is never started (no kernel uses ``parallel=True``).

libgomp reads the setting once, when torch is loaded, so the entry points (tools/train.py, tools/test.py,
tools/demo.py) apply it before anything imports torch, and every process they start inherits it. This module uses
the standard library only, so that it can be loaded before torch without importing the package (whose
``__init__`` imports torch):

    runpy.run_path(osp.join(ROOT, 'projects', 'sam_mtp', 'engine', 'cpu_threads.py'))['set_thread_env_defaults']()

A value the user set (also an empty one) is kept: ``OMP_WAIT_POLICY=ACTIVE`` (or ``GOMP_SPINCOUNT``) brings
spinning back for a dedicated machine.
"""
import os
from typing import Dict, MutableMapping, Optional

THREAD_ENV_DEFAULTS = {'OMP_WAIT_POLICY': 'PASSIVE'}


def set_thread_env_defaults(environ: Optional[MutableMapping[str, str]] = None) -> Dict[str, str]:
    """Put each of :data:`THREAD_ENV_DEFAULTS` that ``environ`` (default ``os.environ``) lacks into it; returns the
    ones it set. Effective for this process only if torch is not imported yet; always for its children."""
    environ = os.environ if environ is None else environ
    applied = {}
    for key, value in THREAD_ENV_DEFAULTS.items():
        if key not in environ:
            environ[key] = value
            applied[key] = value
    return applied
