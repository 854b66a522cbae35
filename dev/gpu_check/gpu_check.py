"""The GPU check: offline install, mmcv's ops for this GPU, paper-size timings and the CUDA tests, one report.

    bash dev/gpu_check/run.sh [--phase build,bench,test] [--python PY] [--mmcv auto|cuda|cpu|installed]

Made for a bare, short-lived GPU machine without network (docs/gpu_check.md): it runs from the repository root
with the wheels that ``dev/gpu_check/prepare.sh`` downloaded into ``.whl/``.

Phases (comma-separated, run in the order given; build first when it is given; ``all`` = build,bench,test):
  build  install the wheels (unpacked from .whl/wheels.tar.xz) with ``pip install --no-index --no-deps
         --target <work>/site``, then build mmcv 2.1.0's ops from its sdist for this GPU's architecture only,
         with all cores, cached in the work folder so that a later call on the same machine skips it. If the
         CUDA build fails, would not finish in its budget, or its ``mmcv.ops`` does not import (a crash
         included), mmcv's CPU-only ops are built instead: **fallback mode**, where the plugin's dispatch runs
         CUDA tensors through its PyTorch point ops; the report says why.
  bench  paper-size step times and peak memory (dev/gpu_check/bench.py), and the projections users ask for.
  test   the CUDA tests with pytest (op parity mmcv kernel vs PyTorch, tokenizers / backbone / heads / losses on
         CUDA tensors, fp16/bf16 autocast training steps, a 1-process NCCL ``dist_train.sh``); every outcome is
         appended to ``<out>/test_outcomes.jsonl`` as it finishes.
The last phase of the call gets all the time the others left (unless its ``--budget-*`` is given). A phase past
its time budget stops itself (its subprocesses killed within the budget) and reports what finished. An
environment that already has the stack (``--python .venv/bin/python``) is used as it is. The report,
``gpu_report.json`` / ``gpu_report.md``, and the logs (``gpu_check_logs.tar.gz``) go to ``--out`` (default
``$OUT``, else ``work_dirs/gpu_check``); the report accumulates over the calls of one machine (kept in the work
folder).

Only the standard library is imported here: this script runs before the stack is installed.
"""
import argparse
import datetime
import hashlib
import io
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / 'dev' / 'gpu_check'
sys.path.insert(0, str(HERE))
from bench import ITEMS  # noqa: E402  (both modules import only the standard library at the top)
from gpu_report import compute_projections, fmt_mib, fmt_s, render_markdown  # noqa: E402
from wheel_pack import ARCHIVE, unpack_wheels  # noqa: E402

PHASES = ('build', 'bench', 'test')  # the order of `--phase all`: timings before the tests (docs/gpu_check.md)
# Seconds. The device tool runs one command for at most COMMAND_LIMIT_S; a call of the check ends by
# --budget-total, which leaves COMMAND_MARGIN_S or more under that limit for Python's start, the report and the
# transfers. Every subprocess is stopped KILL_GRACE_S before its deadline, so that its kill (SIGTERM, then
# SIGKILL: _kill_group) also ends inside the budget.
COMMAND_LIMIT_S = 600
COMMAND_MARGIN_S = 30
KILL_TERM_WAIT_S, KILL_WAIT_S = 15, 5
KILL_GRACE_S = KILL_TERM_WAIT_S + KILL_WAIT_S
DEFAULT_TOTAL_BUDGET = 560
# The caps of a phase that is not the last of its call (the last one gets what the others left); the build of
# fallback mode took 142 s on the H200 (docs/gpu_check.md).
DEFAULT_BUDGETS = dict(build=400, bench=210, test=150)
# Kept from the build budget for the CPU-only mmcv build when the CUDA build cannot finish.
CPU_BUILD_RESERVE = 120

MMCV_VERSION = '2.1.0'
WHEEL_LIST = HERE / 'wheels.txt'
SCHEMA_VERSION = 1

# Imported on the check's paths, too large to carry (docs/gpu_check.md): replaced by import-time stand-ins when,
# and only when, the machine lacks them (scipy's carries its real linear_sum_assignment). Each stand-in package is
# written file by file into <work>/shims/ from templates in stand_ins/ that are not named like the package they
# replace, so that nothing in the repository imports them, or a static tool resolves them, by the real names.
STAND_IN_DIR = HERE / 'stand_ins'
STAND_INS: Dict[str, Dict[str, str]] = {  # module -> {file in its package: template in stand_ins/}
    'numba': {'__init__.py': 'numba_stand_in.py', 'core/__init__.py': 'numba_core_stand_in.py',
              'core/errors.py': 'numba_core_errors_stand_in.py'},
    'cv2': {'__init__.py': 'cv2_stand_in.py'},
    'scipy': {'__init__.py': 'scipy_stand_in.py', 'optimize/__init__.py': 'scipy_optimize_stand_in.py'},
}
SHIMMED_MODULES = tuple(STAND_INS)
# What the test and bench phases import.
STACK_MODULES = ('numpy', 'torch', 'mmengine', 'mmcv', 'mmcv.ops', 'mmdet', 'mmdet3d', 'mmdet3d.models',
                 'mmpretrain', 'segment_anything', 'torchvision', 'pytest', 'pytest_timeout')

# The CUDA test set: whole folders/files, plus the tests named *cuda* in files that mostly hold CPU tests
# (pytest -k cuda selects exactly those there; tests/dev/test_gpu_check.py checks that every test gated on
# CUDA is in this set).
CUDA_TEST_PATHS = (
    'tests/cuda',
    'tests/ops/test_ops_cuda_parity.py',
    'tests/labels/test_feature_sources.py',
    'tests/labels/test_pooling.py',
    'tests/models/test_downstream_backbone.py',
    'tests/models/test_pretraining_algorithms.py',
    'tests/models/test_tokenizers.py',
)
CUDA_TEST_KEYWORD = 'cuda'

# mmcv's CUDA sources of the ops this plugin dispatches (furthest point sampling, gather / group points, ball
# query, kNN, three-NN / interpolation, points in boxes, 3D IoU / NMS), plus those that mmcv's CPU-side files
# reference when MMCV_WITH_CUDA is defined. `--kernels point` (default) compiles only these .cu files and the
# matching part of cudabind.cpp: the other mmcv ops then answer "implementation for device cuda not found",
# as in a CPU build. `--kernels all` compiles every kernel (several minutes more).
POINT_KERNEL_SOURCES = (
    'ball_query_cuda', 'furthest_point_sample_cuda', 'gather_points_cuda', 'group_points_cuda', 'iou3d_cuda',
    'knn_cuda', 'points_in_boxes_cuda', 'stack_ball_query_cuda', 'stack_group_points_cuda',
    'three_interpolate_cuda', 'three_nn_cuda',
    # mmdet's FocalLoss (GroupFree3D) calls mmcv's sigmoid_focal_loss for CUDA tensors
    'focal_loss_cuda',
    # referenced by nms_rotated.cpp, nms_quadri.cpp and spconv_ops.cpp under MMCV_WITH_CUDA
    'nms_rotated_cuda', 'nms_quadri_cuda', 'spconv_ops_cuda', 'sparse_indice',
    # defines the GPU SparseGather/ScatterAdd functors that spconv_ops_cuda.cu calls (an H200 run found the
    # undefined symbol when it was left out)
    'sparse_reordering',
)

BENCH_ITEMS = ITEMS
BENCH_ITEM_CAP = 150  # seconds one item may take at most (model building included)


# --------------------------------------------------------------------------------------------- arguments
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='dev/gpu_check/run.sh', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--phase', default='all',
                        help='build, bench, test, a comma-separated list run in its order (build first), or all '
                        '(build,bench,test)')
    parser.add_argument('--python', default=None,
                        help='interpreter with torch that runs the stack (default: the one running this script)')
    parser.add_argument('--mmcv', choices=('auto', 'cuda', 'cpu', 'installed'), default='auto',
                        help='auto: the environment\'s mmcv if the stack imports, else build the CUDA ops and '
                        'fall back to CPU-only ops; cuda / cpu: build that kind; installed: use the environment '
                        'as it is')
    parser.add_argument('--kernels', choices=('point', 'all'), default='point',
                        help='CUDA kernels to compile: the point ops this plugin dispatches, or all of mmcv\'s')
    parser.add_argument('--cuda-arch', default=None,
                        help='TORCH_CUDA_ARCH_LIST for the build (default: the present GPU\'s capability)')
    parser.add_argument('--wheels', default=str(ROOT / '.whl'), help='folder of prepare.sh\'s downloads')
    parser.add_argument('--work', default=os.path.join(os.environ.get('TMPDIR', '/tmp'), 'sam_mtp_gpu_check'),
                        help='temporary folder: install target, mmcv build cache, logs, the running report')
    parser.add_argument('--out', default=os.environ.get('OUT') or str(ROOT / 'work_dirs' / 'gpu_check'),
                        help='where gpu_report.json / .md, test_outcomes.jsonl and gpu_check_logs.tar.gz go '
                        '(default: $OUT, else work_dirs/gpu_check)')
    for phase in PHASES:
        parser.add_argument(f'--budget-{phase}', type=float, default=None, metavar='S',
                            help=f'seconds the {phase} phase may take (default {DEFAULT_BUDGETS[phase]}; as the '
                            'last phase of the call: what the others left)')
    parser.add_argument('--budget-total', type=float, default=DEFAULT_TOTAL_BUDGET, metavar='S',
                        help=f'seconds this call may take in all, subprocess kills included (default '
                        f'{DEFAULT_TOTAL_BUDGET}: {COMMAND_MARGIN_S} s or more under a {COMMAND_LIMIT_S}-s '
                        'command limit)')
    parser.add_argument('--bench-items', default=','.join(BENCH_ITEMS),
                        help='comma-separated subset of ' + ', '.join(BENCH_ITEMS))
    parser.add_argument('--fresh', action='store_true', help='forget the running report of earlier calls')
    args = parser.parse_args(argv)
    try:
        args.phases = select_phases(args.phase)
        args.bench_items = select_items(args.bench_items)
    except ValueError as error:
        parser.error(str(error))
    return args


def select_phases(text: str) -> List[str]:
    """'all' (build, bench, test) or a comma-separated list of PHASES, run in the order given; build, which the
    others need, must come first."""
    names = [t.strip() for t in text.split(',') if t.strip()]
    if names == ['all']:
        return list(PHASES)
    unknown = [n for n in names if n not in PHASES]
    if unknown or not names:
        raise ValueError(f'--phase: unknown phase(s) {unknown or [text]}; choose from {", ".join(PHASES)} or all')
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f'--phase: {", ".join(repeated)} given twice')
    if 'build' in names and names[0] != 'build':
        raise ValueError(f'--phase {text}: build must come first (the other phases run on what it installs)')
    return names


def phase_budget(args: argparse.Namespace, name: str) -> Optional[float]:
    """Seconds for phase ``name``: its --budget-<name>, else its default cap, else (the last phase of the call)
    None: whatever the earlier phases left of --budget-total."""
    given = getattr(args, f'budget_{name}')
    if given is not None:
        return given
    return None if name == args.phases[-1] else DEFAULT_BUDGETS[name]


def select_items(text: str) -> List[str]:
    names = [t.strip() for t in text.split(',') if t.strip()]
    unknown = [n for n in names if n not in BENCH_ITEMS]
    if unknown:
        raise ValueError(f'--bench-items: unknown item(s) {unknown}; choose from {", ".join(BENCH_ITEMS)}')
    return [i for i in BENCH_ITEMS if i in names]


# ----------------------------------------------------------------------------------------- small helpers
class Clock:
    """Seconds since the start of the call and of the current phase; deadlines from the budgets."""

    def __init__(self, total_budget: float, now: Callable[[], float] = time.monotonic):
        self.now = now
        self.start = now()
        self.total_deadline = self.start + total_budget
        self.phase_start = self.start
        self.phase_deadline = self.total_deadline

    def begin_phase(self, budget: Optional[float]) -> None:
        """Start a phase of ``budget`` seconds (None: up to the end of the total budget)."""
        self.phase_start = self.now()
        self.phase_deadline = self.total_deadline if budget is None else \
            min(self.phase_start + budget, self.total_deadline)

    def remaining(self) -> float:
        return self.phase_deadline - self.now()

    def total_remaining(self) -> float:
        return self.total_deadline - self.now()

    def for_subprocess(self) -> float:
        """The timeout for a subprocess that must end, kill included, by the phase's deadline."""
        return self.remaining() - KILL_GRACE_S

    def elapsed(self) -> float:
        return self.now() - self.start

    def phase_elapsed(self) -> float:
        return self.now() - self.phase_start


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
    tmp.write_text(text)
    os.replace(tmp, path)


def tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return ''
    with open(path, 'rb') as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 20000))
        text = f.read().decode('utf-8', 'replace')
    return '\n'.join(text.splitlines()[-lines:])


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group (ninja then deletes the outputs of interrupted compiles), SIGKILL if needed."""
    for sig, wait in ((signal.SIGTERM, KILL_TERM_WAIT_S), (signal.SIGKILL, KILL_WAIT_S)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_logged(cmd: Sequence[str], log: Path, timeout: float, env: Optional[dict] = None,
               cwd: Path = ROOT, on_tick: Optional[Callable[[], None]] = None,
               tick_every: float = 20.0) -> Tuple[Optional[int], bool]:
    """Run ``cmd`` with its output appended to ``log``; stop its whole process group after ``timeout`` seconds.

    Returns (exit code or None, timed out). ``on_tick`` is called every ``tick_every`` seconds (progress).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    if timeout <= 0:
        return None, True
    with open(log, 'ab') as out:
        out.write(f'\n$ {" ".join(map(str, cmd))}\n'.encode())
        out.flush()
        proc = subprocess.Popen(list(map(str, cmd)), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(cwd),
                                start_new_session=True)
        deadline = time.monotonic() + timeout
        next_tick = time.monotonic() + tick_every
        while True:
            try:
                return proc.wait(timeout=max(0.05, min(1.0, deadline - time.monotonic()))), False
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() >= deadline:
                _kill_group(proc)
                return None, True
            if on_tick is not None and time.monotonic() >= next_tick:
                next_tick += tick_every
                on_tick()


class WheelPin:
    """One line of wheels.txt: ``name==version  # [if-absent(module);] why``."""

    def __init__(self, name: str, version: str, comment: str):
        self.name, self.version, self.comment = name, version, comment
        match = re.search(r'if-absent\(([A-Za-z0-9_.]+)\)', comment)
        self.if_absent = match.group(1) if match else None


def read_wheel_list(path: Path = WHEEL_LIST) -> Dict[str, WheelPin]:
    """wheels.txt -> {normalised name: WheelPin}."""
    pins = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line, _, comment = raw.partition('#')
        line = line.strip()
        if not line:
            continue
        match = re.fullmatch(r'([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)', line)
        if not match:
            raise ValueError(f'{path}:{number}: expected "name==version", got {line!r}')
        name = normalise_name(match.group(1))
        if name in pins:
            raise ValueError(f'{path}:{number}: {name} is listed twice')
        pins[name] = WheelPin(name, match.group(2), comment.strip())
    return pins


def normalise_name(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def wheel_name(path: Path) -> str:
    """The distribution name of a wheel file (``segment_anything-1.0-py3-none-any.whl`` -> segment-anything)."""
    return normalise_name(path.name.split('-')[0])


def wheel_files(wheel_dir: Path) -> List[Path]:
    return sorted(p for p in wheel_dir.glob('*.whl'))


def write_stand_in(name: str, dest: Path) -> Path:
    """Write the stand-in package of module ``name`` into ``dest/name`` from its templates (STAND_INS)."""
    for target, template in STAND_INS[name].items():
        path = dest / name / target
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(STAND_IN_DIR / template, path)
    return dest / name


def commit_of_checkout() -> Dict[str, object]:
    """The commit the check runs: $SAM_MTP_COMMIT, else .gpu_check_commit (written just before the tree is sent,
    docs/gpu_check.md), else git. The stamp comes first because a copied tree can carry a stale .git (seen on
    the H200 machine: its .git named an older commit than the files it received)."""
    if os.environ.get('SAM_MTP_COMMIT'):
        return dict(commit=os.environ['SAM_MTP_COMMIT'].strip(), dirty=None, source='SAM_MTP_COMMIT')
    stamp = ROOT / '.gpu_check_commit'
    if stamp.exists():
        return dict(commit=stamp.read_text().strip(), dirty=None, source='.gpu_check_commit')
    try:
        out = subprocess.run(['git', '-C', str(ROOT), 'rev-parse', 'HEAD'], capture_output=True, text=True,
                             timeout=10)
        if out.returncode == 0:
            # Untracked files count: the GPU machine receives them with the tracked ones.
            status = subprocess.run(['git', '-C', str(ROOT), 'status', '--porcelain'], capture_output=True,
                                    text=True, timeout=10)
            return dict(commit=out.stdout.strip(), dirty=bool(status.stdout.strip()), source='git')
    except (OSError, subprocess.SubprocessError):
        pass
    return dict(commit='unknown', dirty=None, source='none')


# ------------------------------------------------------------------------------------------------ report
def empty_report() -> dict:
    return dict(schema=SCHEMA_VERSION, created=None, updated=None, commit=None, machine={}, software={},
                mode=None, routing={}, shims=[], calls=[], phases={})


def load_running_report(path: Path) -> dict:
    if path.exists():
        try:
            report = json.loads(path.read_text())
            if report.get('schema') == SCHEMA_VERSION:
                return report
        except (OSError, ValueError):
            pass
    return empty_report()


def write_report(report: dict, out_dir: Path, running: Optional[Path] = None) -> Tuple[Path, Path]:
    """gpu_report.json and gpu_report.md into ``out_dir`` (and the running copy), each written atomically."""
    report['updated'] = now_iso()
    text = json.dumps(report, indent=1, sort_keys=False)
    json_path, md_path = out_dir / 'gpu_report.json', out_dir / 'gpu_report.md'
    atomic_write_text(json_path, text + '\n')
    atomic_write_text(md_path, render_markdown(report))
    if running is not None:
        atomic_write_text(running, text + '\n')
    return json_path, md_path


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


# ----------------------------------------------------------------------------------------------- the run
PROBE_TORCH = r'''
import json, os, platform, sys, torch
info = dict(torch=torch.__version__, torch_cuda=torch.version.cuda, cuda_available=torch.cuda.is_available(),
            torch_dir=os.path.dirname(torch.__file__), python=platform.python_version(),
            python_tag='cp%d%d' % sys.version_info[:2])
if info['cuda_available']:
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, capability='%d.%d' % (p.major, p.minor), gpu_count=torch.cuda.device_count(),
                gpu_memory_gib=round(p.total_memory / 2**30, 1))
print(json.dumps(info))
'''

# mmpretrain 1.2.0 imports its BLIP models whenever a transformers >= 4.28 distribution is installed (mmdet's
# re-ID modules import mmpretrain.models), and they need names that newer transformers releases no longer export
# from transformers.modeling_utils: with such a transformers, importing mmdet3d.models fails ("NoneType takes no
# arguments", seen on the H200 machine). This probe says whether the machine's transformers is such a release.
PROBE_TRANSFORMERS = r'''
import json
try:
    from importlib.metadata import version
    found = version('transformers')
except Exception:
    found = None
ok = True
if found is not None:
    try:
        from transformers.modeling_utils import (PreTrainedModel, apply_chunking_to_forward,  # noqa: F401
                                                 find_pruneable_heads_and_indices, prune_linear_layer)
    except Exception:
        ok = False
print(json.dumps(dict(version=found, mmpretrain_compatible=ok)))
'''

PROBE_MODULES = r'''
import importlib, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
        out[name] = dict(ok=True, version=str(getattr(module, '__version__', '')),
                         file=str(getattr(module, '__file__', '')),
                         shim=bool(getattr(module, 'SAM_MTP_IMPORT_SHIM', False)))
        if name == 'mmcv.ops':
            from mmcv.ops import get_compiling_cuda_version
            cuda = str(get_compiling_cuda_version())
            out[name]['cuda'] = None if 'not available' in cuda else cuda
        if name == 'projects.sam_mtp.ops':
            from projects.sam_mtp.ops.dispatch import kernel_routing
            out[name]['routing'] = kernel_routing('cuda')
    except BaseException as error:  # noqa: B902  (SystemExit from a broken package counts as missing)
        out[name] = dict(ok=False, error=(type(error).__name__ + ': ' + str(error)).splitlines()[0][:300])
print(json.dumps(out))
'''


def describe_exit(returncode: int) -> str:
    """``exit 1``, or ``killed by SIGSEGV`` for a process ended by a signal (a negative return code)."""
    if returncode < 0:
        try:
            return f'killed by {signal.Signals(-returncode).name}'
        except ValueError:
            return f'killed by signal {-returncode}'
    return f'exit {returncode}'


class GPUCheck:
    """One call of the check: the selected phases, their budgets, the accumulated report."""

    def __init__(self, args: argparse.Namespace, clock: Optional[Clock] = None):
        self.args = args
        self.python = args.python or sys.executable
        self.work = Path(args.work)
        self.out = Path(args.out)
        self.target = self.work / 'site'
        self.logs = self.work / 'logs'
        self.running = self.work / 'gpu_report.json'
        self.clock = clock or Clock(args.budget_total)
        self.phase = 'setup'
        self.extra_paths: List[Path] = []  # PYTHONPATH entries before the repository (install, mmcv build)
        self.shim_paths: List[Path] = []
        self.stack_ready = False  # the whole stack imported in this call, with these paths
        self.mmcv_failures: Dict[str, str] = {}  # mmcv build kind -> why it is not used in this call
        for path in (self.work, self.logs, self.out):
            path.mkdir(parents=True, exist_ok=True)
        self.report = empty_report() if args.fresh else load_running_report(self.running)
        self.report['created'] = self.report.get('created') or now_iso()
        self.report['commit'] = commit_of_checkout()
        self.report['calls'].append(dict(started=now_iso(), argv=list(getattr(args, 'argv', []) or []),
                                         phases=args.phases))
        self._torch_info: Optional[dict] = None

    # ---------------------------------------------------------------------------------------- output
    def say(self, message: str) -> None:
        print(f'[gpu-check {self.phase} +{self.clock.phase_elapsed():.0f}s | total +{self.clock.elapsed():.0f}s] '
              f'{message}', flush=True)

    def save(self) -> None:
        write_report(self.report, self.out, self.running)

    # ------------------------------------------------------------------------------------ environment
    def env(self, shims: bool = True, **extra: str) -> dict:
        """The environment of every subprocess: installed wheels, the built mmcv, the repository, tests/,
        this folder (pytest plugin), and the stand-ins for absent modules last (not for mmcv's build: its
        setup.py checks the version of an importable cv2)."""
        env = dict(os.environ)
        paths = [str(p) for p in self.extra_paths] + [str(ROOT), str(ROOT / 'tests'), str(HERE)]
        paths += [str(p) for p in self.shim_paths] if shims else []
        if env.get('PYTHONPATH'):
            paths.append(env['PYTHONPATH'])
        env['PYTHONPATH'] = os.pathsep.join(paths)
        env.setdefault('PYTHONUNBUFFERED', '1')
        env.update(extra)
        return env

    def probe(self, code: str, *argv: str, env: Optional[dict] = None, timeout: float = 300) -> dict:
        """Run a probe script in the stack's interpreter; its last output line is JSON. A crash (an import that
        dies in a compiled extension) raises RuntimeError with faulthandler's Python stack, a probe past the
        call's budget subprocess.TimeoutExpired."""
        timeout = max(5.0, min(timeout, self.clock.total_remaining()))
        out = subprocess.run([self.python, '-X', 'faulthandler', '-c', code, *argv], capture_output=True,
                             text=True, cwd=str(ROOT), env=env or self.env(), timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f'{self.python} could not run a probe ({describe_exit(out.returncode)}; modules '
                               f'{" ".join(argv) or "-"}): '
                               + ((out.stderr or out.stdout).strip()[-1500:] or 'no output'))
        return json.loads(out.stdout.strip().splitlines()[-1])

    def torch_info(self) -> dict:
        if self._torch_info is None:
            self._torch_info = self.probe(PROBE_TORCH)
            t = self._torch_info
            self.report['machine'].update(
                hostname=socket.gethostname(), cpu_count=os.cpu_count(), platform=platform.platform(),
                gpu=t.get('gpu'), capability=t.get('capability'), gpu_memory_gib=t.get('gpu_memory_gib'),
                gpu_count=t.get('gpu_count', 0))
            self.report['software'].update(python=t['python'], torch=t['torch'], torch_cuda=t['torch_cuda'])
        return self._torch_info

    def probe_stack(self) -> dict:
        """Import every module of the stack (and the plugin's ops, for their routing) in the stack's interpreter.
        Once everything imports, test and bench of this call reuse the answer (same paths, same modules)."""
        stack = self.probe(PROBE_MODULES, *STACK_MODULES, 'projects.sam_mtp.ops')
        self.record_stack(stack)
        self.stack_ready = all(stack[m]['ok'] for m in (*STACK_MODULES, 'projects.sam_mtp.ops'))
        return stack

    def record_stack(self, stack: dict) -> None:
        software = self.report['software']
        for name in ('numpy', 'mmengine', 'mmcv', 'mmdet', 'mmdet3d', 'mmpretrain', 'torchvision'):
            if stack.get(name, {}).get('ok'):
                software[name] = stack[name]['version']
        ops = stack.get('mmcv.ops', {})
        if ops.get('ok'):
            software['mmcv_cuda'] = ops.get('cuda')
            self.report['mode'] = 'kernels' if ops.get('cuda') else 'fallback'
            if ops.get('cuda'):
                self.report.pop('mode_reason', None)
        if stack.get('projects.sam_mtp.ops', {}).get('ok'):
            self.report['routing'] = stack['projects.sam_mtp.ops'].get('routing', {})

    # ----------------------------------------------------------------------------------------- phases
    def run(self) -> int:
        failures = 0
        phases = list(self.args.phases)
        for name in phases:
            budget = phase_budget(self.args, name)
            self.clock.begin_phase(budget)
            self.phase = name
            record = dict(status='running', budget_s=round(self.clock.remaining(), 1), started=now_iso())
            self.report['phases'][name] = record
            self.say(f'start (budget {record["budget_s"]:.0f} s'
                     + (', what the earlier phases left)' if budget is None else ')'))
            try:
                status = getattr(self, f'phase_{name}')(record)
            except Exception as error:  # a phase's crash is a result to report, not a lost run
                status = 'failed'
                record['error'] = f'{type(error).__name__}: {error}'
                self.say(f'failed: {record["error"]}')
            record['status'] = status
            record['elapsed_s'] = round(self.clock.phase_elapsed(), 1)
            self.say(f'{status} in {record["elapsed_s"]:.0f} s')
            self.save()
            self.archive_logs()
            failures += status not in ('done', 'skipped')
            if name == 'build' and status == 'failed':
                for later in phases[phases.index(name) + 1:]:
                    self.report['phases'][later] = dict(status='not run', note='the build phase failed')
                self.save()
                break
        self.phase = 'end'
        json_path, md_path = write_report(self.report, self.out, self.running)
        self.archive_logs()
        self.say(f'report: {json_path} and {md_path}; logs: {self.out / LOG_ARCHIVE}')
        return 1 if failures else 0

    def archive_logs(self) -> None:
        """The logs of the work folder into <out>/gpu_check_logs.tar.gz, each cut to its last part so that the
        archive stays under the device tool's 16 MiB per file."""
        try:
            archive_logs(self.logs, self.out / LOG_ARCHIVE)
        except OSError as error:  # the report matters more than its logs
            self.say(f'could not archive the logs: {error}')

    # ------------------------------------------------------------------------------------------ build
    def step(self, record: dict, name: str, status: str, started: float, detail: str = '') -> None:
        record.setdefault('steps', []).append(
            dict(name=name, status=status, elapsed_s=round(self.clock.now() - started, 1), detail=detail))
        self.say(f'{name}: {status}' + (f' ({detail})' if detail else ''))
        self.save()

    def phase_build(self, record: dict) -> str:
        started = self.clock.now()
        torch_info = self.torch_info()
        self.step(record, 'torch', 'done', started,
                  f'torch {torch_info["torch"]}, CUDA {torch_info["torch_cuda"]}, '
                  f'{torch_info.get("gpu") or "no GPU visible"}')
        if self.args.mmcv in ('auto', 'installed'):
            stack = self.probe_stack()
            if self.stack_ready and not any(stack[m].get('shim') for m in STACK_MODULES):
                cuda = stack['mmcv.ops'].get('cuda')
                self.step(record, 'environment', 'done', started,
                          f'the stack imports from {self.python} as it is (mmcv {stack["mmcv"]["version"]}, '
                          + (f'CUDA {cuda})' if cuda else 'no CUDA kernels)'))
                self.report['environment'] = 'prepared'
                return 'done'
            if self.args.mmcv == 'installed':
                missing = [f'{m} ({stack[m]["error"]})' for m in STACK_MODULES if not stack[m]['ok']]
                raise RuntimeError(f'--mmcv installed: the stack does not import from {self.python}: '
                                   + '; '.join(missing))
        self.report['environment'] = 'installed by the check'
        self.install_wheels(record)
        self.add_shims(record)
        self.ensure_mmcv(record)
        stack = self.probe_stack()
        broken = [f'{m}: {stack[m]["error"]}' for m in (*STACK_MODULES, 'projects.sam_mtp.ops')
                  if not stack[m]['ok']]
        if broken:
            self.step(record, 'import check', 'failed', started, '; '.join(broken))
            return 'failed'
        self.step(record, 'import check', 'done', started, f'mode {self.report["mode"]}')
        return 'done'

    def install_wheels(self, record: dict) -> None:
        """pip install --no-index --no-deps --target <work>/site: every carried wheel of wheels.txt, except the
        ``if-absent`` ones whose module the machine already has (its own build pairs with its torch)."""
        started = self.clock.now()
        wheel_dir = Path(self.args.wheels)
        pins = read_wheel_list()
        archive = wheel_dir / ARCHIVE
        wheels = unpack_wheels(archive, self.work / 'wheels') if archive.exists() else wheel_files(wheel_dir)
        if not wheels:
            raise RuntimeError(f'no wheels in {wheel_dir}: run dev/gpu_check/prepare.sh on a machine with '
                               'registry access and carry .whl/ along')
        missing = sorted(set(pins) - {wheel_name(w) for w in wheels})
        if missing:
            raise RuntimeError(f'{wheel_dir} lacks {", ".join(missing)} of wheels.txt: rerun prepare.sh')
        conditional = {pin.if_absent: name for name, pin in pins.items() if pin.if_absent}
        present = self.probe(PROBE_MODULES, *conditional, env=self.env()) if conditional else {}
        skip = {conditional[m] for m, found in present.items() if found['ok']}
        wheels = [w for w in wheels if wheel_name(w) in pins and wheel_name(w) not in skip]
        fingerprint = hashlib.sha256('\n'.join(f'{w.name} {w.stat().st_size}' for w in wheels).encode()).hexdigest()
        stamp = self.target / '.sam_mtp_wheels'
        kept = f' (kept the machine\'s {", ".join(sorted(skip))})' if skip else ''
        if stamp.exists() and stamp.read_text() == fingerprint:
            self.extra_paths.insert(0, self.target)
            self.step(record, 'install', 'cached', started, f'{len(wheels)} wheels already in {self.target}{kept}')
            return
        shutil.rmtree(self.target, ignore_errors=True)
        log = self.logs / 'install.log'
        cmd = [*self.pip_command(wheels), 'install', '--no-index', '--no-deps', '--disable-pip-version-check',
               '--no-compile', '--target', str(self.target), *map(str, wheels)]
        rc, timed_out = run_logged(cmd, log, self.clock.for_subprocess(), env=dict(os.environ, PYTHONPATH=''))
        if rc != 0:
            raise RuntimeError(f'pip install --target failed ({"budget" if timed_out else f"exit {rc}"}):\n'
                               + tail(log))
        self.target.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint)
        self.extra_paths.insert(0, self.target)
        self.step(record, 'install', 'done', started, f'{len(wheels)} wheels into {self.target}{kept}')

    def pip_command(self, wheels: Sequence[Path]) -> List[str]:
        """``python -m pip``, or pip run from its own wheel when the interpreter has no pip."""
        ok = subprocess.run([self.python, '-m', 'pip', '--version'], capture_output=True,
                            env=dict(os.environ, PYTHONPATH='')).returncode == 0
        if ok:
            return [self.python, '-m', 'pip']
        carried = [w for w in wheels if wheel_name(w) == 'pip']
        if not carried:
            raise RuntimeError(f'{self.python} has no pip and the carried wheels hold none')
        return [self.python, str(carried[-1] / 'pip')]

    def add_shims(self, record: dict) -> None:
        """Put the stand-in of each absent module (and only those) on the path, last."""
        started = self.clock.now()
        found = self.probe(PROBE_MODULES, *SHIMMED_MODULES, env=self.env())
        absent = [m for m in SHIMMED_MODULES if not found[m]['ok']]
        shim_dir = self.work / 'shims'
        shutil.rmtree(shim_dir, ignore_errors=True)
        for name in absent:
            write_stand_in(name, shim_dir)
        if 'scipy' in absent:  # scipy's own linear_sum_assignment module, extracted by prepare.sh
            lsap = sorted((Path(self.args.wheels) / 'scipy_lsap').glob('*'))
            if not any(p.suffix == '.so' for p in lsap):
                raise RuntimeError(f'{self.args.wheels}/scipy_lsap has no _lsap*.so: rerun prepare.sh')
            for path in lsap:
                shutil.copy(path, shim_dir / 'scipy' / 'optimize' / path.name)
        self.shim_paths = [shim_dir] if absent else []
        self.report['shims'] = absent
        masked = self.mask_incompatible_transformers()
        present = [f'{m} {found[m]["version"]}' for m in SHIMMED_MODULES if found[m]['ok']]
        self.step(record, 'stand-ins', 'done', started,
                  (f'import-time stand-ins for {", ".join(absent)}' if absent else 'none needed')
                  + (f'; the machine has {", ".join(present)}' if present else '')
                  + (f'; {masked}' if masked else ''))

    def mask_incompatible_transformers(self) -> Optional[str]:
        """Hide a transformers release that mmpretrain 1.2.0 cannot import from mmpretrain's version check.

        A ``transformers-0.dist-info`` in the install directory (first on the path) makes
        ``importlib.metadata`` report version 0 to mmpretrain, which then registers placeholders for its
        multimodal models instead of importing them; ``import transformers`` itself is untouched (mmdet's BERT
        wrapper still finds it). Returns what it masked, or None."""
        mask = self.target / 'transformers-0.dist-info'
        shutil.rmtree(mask, ignore_errors=True)
        found = self.probe(PROBE_TRANSFORMERS, env=self.env())
        if found['version'] is None or found['mmpretrain_compatible']:
            return None
        mask.mkdir(parents=True)
        (mask / 'METADATA').write_text('Metadata-Version: 2.1\nName: transformers\nVersion: 0\n')
        self.report['transformers_masked'] = found['version']
        return f'transformers {found["version"]} masked from mmpretrain\'s version check'

    def mmcv_build_dir(self, kind: str) -> Path:
        info = self.torch_info()
        tag = f'{kind}-torch{info["torch"].split("+")[0]}-{info["python_tag"]}'
        if kind == 'cuda':
            tag += f'-sm{self.cuda_arch().replace(".", "")}-{self.args.kernels}'
        return self.work / 'mmcv' / tag

    def finished_builds(self) -> List[Path]:
        """Finished mmcv builds of earlier calls for this torch and Python, CUDA ones first."""
        info = self.torch_info()
        prefix = f'-torch{info["torch"].split("+")[0]}-{info["python_tag"]}'
        builds = [p.parent for p in (self.work / 'mmcv').glob('*/.complete') if prefix in p.parent.name]
        return sorted(builds, key=lambda p: (not p.name.startswith('cuda'), p.name))

    def cuda_arch(self) -> str:
        if self.args.cuda_arch:
            return self.args.cuda_arch
        capability = self.torch_info().get('capability')
        if not capability:
            raise RuntimeError('no GPU visible to torch: give --cuda-arch (e.g. 9.0) to build CUDA kernels anyway')
        return capability

    def ensure_mmcv(self, record: dict) -> None:
        """Use a finished build from an earlier call, or build: CUDA first (auto/cuda), CPU-only as fallback."""
        kinds = dict(auto=['cuda', 'cpu'], cuda=['cuda'], cpu=['cpu'])[self.args.mmcv]
        if 'cuda' in kinds and self.args.mmcv == 'auto' and not self.cuda_build_possible(record):
            kinds = ['cpu']
        for i, kind in enumerate(kinds):
            if (self.mmcv_build_dir(kind) / '.complete').exists():
                self.extra_paths.append(self.mmcv_build_dir(kind) / 'src')
                self.step(record, f'mmcv {kind}', 'cached', self.clock.now(), str(self.mmcv_build_dir(kind)))
                self.record_mode_reason(kind)
                return
            failed = self.mmcv_build_dir(kind) / '.failed'
            if failed.exists() and i + 1 < len(kinds):  # do not spend this call's budget on it again
                self.mmcv_failures[kind] = f'failed in an earlier call: {failed.read_text()[:600]}'
                self.step(record, f'mmcv {kind}', 'skipped', self.clock.now(),
                          f'failed in an earlier call ({failed.read_text()[:300]}); --mmcv {kind} retries it')
                continue
            # Keep time for the CPU-only build unless an earlier call finished it already.
            later = kinds[i + 1:]
            reserve = 0 if not later or any((self.mmcv_build_dir(k) / '.complete').exists() for k in later) \
                else CPU_BUILD_RESERVE
            if self.build_mmcv(record, kind, self.clock.for_subprocess() - reserve):
                self.extra_paths.append(self.mmcv_build_dir(kind) / 'src')
                self.record_mode_reason(kind)
                return
        raise RuntimeError('no mmcv build finished; see the build steps and logs in ' + str(self.logs))

    def record_mode_reason(self, kind: str) -> None:
        """Why this call runs mmcv without CUDA kernels (fallback mode), in the report."""
        if kind != 'cpu':
            return
        if self.args.mmcv == 'cpu':
            self.report['mode_reason'] = 'chosen with --mmcv cpu'
        else:
            self.report['mode_reason'] = 'the CUDA build is not used: ' + self.mmcv_failures.get(
                'cuda', 'unknown (see the build steps)')

    def cuda_build_possible(self, record: dict) -> bool:
        reasons = []
        if not self.torch_info().get('cuda_available') and not self.args.cuda_arch:
            reasons.append('no GPU visible to torch')
        if not self.torch_info().get('torch_cuda'):
            reasons.append('torch is a CPU-only build')
        if find_cuda_home() is None:
            reasons.append('no CUDA toolkit (nvcc) found')
        if reasons:
            self.mmcv_failures['cuda'] = '; '.join(reasons)
            self.step(record, 'mmcv cuda', 'skipped', self.clock.now(), '; '.join(reasons))
        return not reasons

    def build_mmcv(self, record: dict, kind: str, timeout: float) -> bool:
        """Build mmcv's ops in place in <work>/mmcv/<tag>/src; ninja resumes an interrupted build."""
        started = self.clock.now()
        build_dir = self.mmcv_build_dir(kind)
        src = build_dir / 'src'
        sdists = sorted(Path(self.args.wheels).glob(f'mmcv-{MMCV_VERSION}.tar.gz'))
        if not sdists:
            raise RuntimeError(f'{self.args.wheels} has no mmcv-{MMCV_VERSION}.tar.gz (run prepare.sh)')
        if not src.exists():
            unpack_sdist(sdists[0], src)
            if kind == 'cuda' and self.args.kernels == 'point':
                prune_cuda_sources(src / 'mmcv' / 'ops' / 'csrc' / 'pytorch' / 'cuda', POINT_KERNEL_SOURCES)
        env = self.env(shims=False, MMCV_WITH_OPS='1', MAX_JOBS=str(os.cpu_count() or 4))
        if kind == 'cuda':
            cuda_home = find_cuda_home()
            env.update(FORCE_CUDA='1', TORCH_CUDA_ARCH_LIST=self.cuda_arch(), CUDA_HOME=str(cuda_home))
            extra = cuda_include_dirs(cuda_home, self.torch_info()['torch_dir'])
            if extra:  # a toolkit without cuSPARSE/cuBLAS headers: torch's pip CUDA packages have them
                env['CPATH'] = os.pathsep.join(extra + [env['CPATH']] if env.get('CPATH') else extra)
        else:
            env.update(FORCE_CUDA='0', CUDA_VISIBLE_DEVICES='')  # setup.py builds CUDA when it sees a GPU
        log = self.logs / f'mmcv-{build_dir.name}.log'
        self.say(f'building mmcv {MMCV_VERSION} ops ({kind}'
                 + (f', arch {self.cuda_arch()}, {self.args.kernels} kernels' if kind == 'cuda' else '')
                 + f') with {env["MAX_JOBS"]} jobs, up to {timeout:.0f} s; log {log}')

        def progress():
            counts = re.findall(r'\[(\d+)/(\d+)\]', tail(log, 40))
            self.say(f'mmcv {kind}: compiled {counts[-1][0]}/{counts[-1][1]}' if counts else f'mmcv {kind}: working')

        (build_dir / '.failed').unlink(missing_ok=True)
        rc, timed_out = run_logged([self.python, 'setup.py', 'build_ext', '--inplace'], log, timeout, env=env,
                                   cwd=src, on_tick=progress)
        if rc == 0 and list((src / 'mmcv').glob('_ext*.so')):
            try:
                check = self.probe(PROBE_MODULES, 'mmcv.ops', env=self.env_with(src))['mmcv.ops']
            except (RuntimeError, subprocess.TimeoutExpired) as error:  # the import died (the H200's CUDA build)
                check = dict(ok=False, error=str(error))
            if check['ok'] and bool(check.get('cuda')) == (kind == 'cuda'):
                (build_dir / '.complete').write_text(json.dumps(dict(kind=kind, cuda=check.get('cuda'))))
                self.step(record, f'mmcv {kind}', 'done', started,
                          f'CUDA {check["cuda"]}' if check.get('cuda') else 'CPU-only ops')
                return True
            detail = ('built, but mmcv.ops does not import: ' + check['error'] if not check['ok'] else
                      f'built, but mmcv.ops reports CUDA {check.get("cuda")} for a {kind} build')
            (build_dir / '.failed').write_text(detail)
        elif timed_out:
            counts = re.findall(r'\[(\d+)/(\d+)\]', tail(log, 40))
            detail = ('stopped at the budget' + (f' after {counts[-1][0]}/{counts[-1][1]} compile steps' if counts
                                                 else '') + '; a later call resumes it')
        else:
            detail = f'exit {rc}: ' + ' / '.join(line for line in tail(log, 60).splitlines()
                                                 if 'error' in line.lower())[-600:]
            (build_dir / '.failed').write_text(detail)
        self.mmcv_failures[kind] = detail
        self.step(record, f'mmcv {kind}', 'stopped' if timed_out else 'failed', started, detail)
        return False

    def env_with(self, path: Path) -> dict:
        env = self.env()
        env['PYTHONPATH'] = os.pathsep.join([str(path), env['PYTHONPATH']])
        return env

    def ensure_stack_for(self, record: dict) -> bool:
        """Test and bench need the stack: reuse the build phase of this or an earlier call (same machine)."""
        if self.stack_ready:  # imported in this call already (the build's import check, or the other phase)
            return True
        if not self.extra_paths and self.report.get('environment') != 'prepared':
            if (self.target / '.sam_mtp_wheels').exists():
                self.extra_paths.append(self.target)
            finished = self.finished_builds()
            if finished:
                self.extra_paths.append(finished[0] / 'src')
            found = self.probe(PROBE_MODULES, *SHIMMED_MODULES)
            absent = [m for m in SHIMMED_MODULES if not found[m]['ok']]
            if absent and (self.work / 'shims').exists():
                self.shim_paths = [self.work / 'shims']
        stack = self.probe_stack()
        if not self.stack_ready:
            broken = [f'{m}: {stack[m]["error"]}' for m in (*STACK_MODULES, 'projects.sam_mtp.ops')
                      if not stack[m]['ok']]
            record['error'] = ('the stack does not import; run `dev/gpu_check/run.sh --phase build` first ('
                               + '; '.join(broken) + ')')
            self.say(record['error'])
            return False
        self.torch_info()
        return True

    # ------------------------------------------------------------------------------------------- test
    def phase_test(self, record: dict) -> str:
        if not self.ensure_stack_for(record):
            return 'failed'
        # The pytest plugin appends each outcome to this file in --out ($OUT) as the test finishes: what a call
        # stopped from outside leaves there is every test that finished.
        log_path = self.out / TEST_OUTCOMES
        log_path.unlink(missing_ok=True)
        done = set()

        def progress():
            rows = read_jsonl(log_path)
            new = [r for r in rows if 'outcome' in r and r['nodeid'] not in done]
            for line in new:
                done.add(line['nodeid'])
                self.say(f'{line["outcome"].upper():8s} {line["nodeid"]} ({line["duration_s"]:.1f} s)'
                         + (f' -- {line["reason"]}' if line['reason'] else ''))
            if new:
                summarise_tests(record, rows)
                self.save()

        paths = [p for p in CUDA_TEST_PATHS if (ROOT / p).exists()]
        timeout = self.clock.for_subprocess()
        if timeout < 30:  # pytest imports the stack and collects before its first test: nothing would finish
            record['note'] = f'not started: {max(0, timeout):.0f} s left for the tests'
            return 'stopped'
        cmd = [self.python, '-m', 'pytest', *paths, '-k', CUDA_TEST_KEYWORD, '-p', 'gpu_check_pytest_plugin',
               '-p', 'no:cacheprovider', '-q', '-rs', f'--timeout={int(max(30, min(300, timeout)))}']
        rc, timed_out = run_logged(cmd, self.logs / 'test.log', timeout,
                                   env=self.env(SAM_MTP_TEST_LOG=str(log_path)), on_tick=progress, tick_every=3)
        progress()
        summarise_tests(record, read_jsonl(log_path))
        record['log_tail'] = tail(self.logs / 'test.log', 25)
        if timed_out:
            record['note'] = ('stopped at the budget: the tests above finished, '
                              f'{len(record["not_run"])} did not run')
            return 'stopped'
        bad = record['summary'].get('failed', 0) + record['summary'].get('error', 0)
        if rc not in (0, 5) or bad:  # 5: nothing collected
            return 'failed'
        return 'done'

    # ------------------------------------------------------------------------------------------ bench
    def phase_bench(self, record: dict) -> str:
        """The items in one process (the stack is imported once), restarted on the remaining items if it
        crashes; each finished item's JSON is kept, whatever happens after it."""
        if not self.ensure_stack_for(record):
            return 'failed'
        items = record.setdefault('items', {})
        out_dir = self.work / 'bench'
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        pending = list(self.args.bench_items)
        log = self.logs / 'bench.log'

        def collect():
            for name in list(pending):
                done, failed = out_dir / f'{name}.json', out_dir / f'{name}.error.json'
                if done.exists():
                    items[name] = dict(json.loads(done.read_text()), status='done')
                elif failed.exists():
                    items[name] = dict(status='failed', **json.loads(failed.read_text()))
                else:
                    continue
                pending.remove(name)
                item = items[name]
                self.say(f'{name}: ' + (f'median {fmt_s(item.get("median_s"))}, peak '
                                        f'{fmt_mib(item.get("peak_memory_mib"))}' if item['status'] == 'done'
                                        else f'failed: {item["reason"]}'))
                record['projections'] = compute_projections(items)
                self.save()

        def unfinished(name: str, **entry) -> None:
            """An item that wrote no result: what it measured before it stopped (bench.py's <item>.partial.json,
            e.g. SAM's image encoder before its mask loop) is kept with it."""
            partial = out_dir / f'{name}.partial.json'
            if partial.exists():
                entry = dict(json.loads(partial.read_text()), **entry)
            items[name] = entry
            pending.remove(name)

        stopped = False
        while pending:
            time_left = self.clock.for_subprocess()
            if time_left < 20:  # bench.py alone takes longer than that to import the stack
                stopped = True
                break
            self.say(f'running {", ".join(pending)} (up to {time_left:.0f} s)')
            cmd = [self.python, str(HERE / 'bench.py'), *pending, '--out-dir', str(out_dir),
                   '--item-cap', str(BENCH_ITEM_CAP)]
            rc, timed_out = run_logged(cmd, log, time_left, env=self.env(), on_tick=collect, tick_every=5)
            collect()
            if timed_out:
                stopped = True
                if pending:  # items run in order: the first unfinished one was running
                    unfinished(pending[0], status='stopped', reason='the phase budget ran out during this item')
                break
            if rc != 0 and pending:  # the process died in pending[0]: record it, go on with the rest
                unfinished(pending[0], status='failed', reason=f'bench.py exited {rc}: ' + tail(log, 8))
        for name in pending:
            items[name] = dict(status='not run', reason='phase budget used up')
        record['projections'] = compute_projections(items)
        failed = [n for n, i in items.items() if i['status'] == 'failed']
        if failed:
            record['note'] = f'failed items: {", ".join(failed)} (reasons in the JSON report)'
            return 'failed'
        return 'stopped' if stopped else 'done'


# What goes to --out ($OUT on the device machine, whose tool returns at most 8 files of at most 16 MiB, named in
# letters, digits, '.', '_' and '-'): gpu_report.json, gpu_report.md, TEST_OUTCOMES and LOG_ARCHIVE.
TEST_OUTCOMES = 'test_outcomes.jsonl'
LOG_ARCHIVE = 'gpu_check_logs.tar.gz'
LOG_ARCHIVE_BYTES = 12 * 2**20  # the uncompressed logs it holds at most, all together


def archive_logs(log_dir: Path, archive: Path, limit: int = LOG_ARCHIVE_BYTES) -> None:
    """Every ``*.log`` of ``log_dir`` into the tar.gz ``archive`` (written atomically), each log cut to its last
    ``limit / number of logs`` bytes (the end of a log says how it ended), so that the logs in it are never
    over ``limit`` bytes, even uncompressed."""
    logs = sorted(log_dir.glob('*.log')) if log_dir.exists() else []
    share = limit // max(1, len(logs))
    tmp = archive.with_name(f'.{archive.name}.tmp{os.getpid()}')
    with tarfile.open(tmp, 'w:gz') as tar:
        for log in logs:
            with open(log, 'rb') as f:
                size = f.seek(0, os.SEEK_END)
                kept = size if size <= share else share - 100  # 100 bytes for the line saying so
                f.seek(size - kept)
                data = f.read(kept)
            if kept < size:
                data = f'[the first {size - kept:,} of {size:,} bytes of this log were cut]\n'.encode() + data
            info = tarfile.TarInfo(f'logs/{log.name}')
            info.size, info.mtime = len(data), int(log.stat().st_mtime)
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, archive)


def read_jsonl(path: Path) -> List[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line being written
            continue
    return rows


def summarise_tests(record: dict, rows: List[dict]) -> None:
    """Outcome per test (the last word wins: a teardown error after a pass is an error), counts, and the
    collected tests that never reported (stopped by the budget)."""
    collected: List[str] = []
    outcomes: Dict[str, dict] = {}
    for row in rows:
        if 'collected' in row:
            collected = row['collected']
        elif row.get('outcome'):
            if outcomes.get(row['nodeid'], {}).get('outcome') in ('failed', 'error'):
                continue
            outcomes[row['nodeid']] = row
    record['tests'] = [dict(nodeid=k, outcome=v['outcome'], duration_s=v['duration_s'], reason=v['reason'])
                       for k, v in outcomes.items()]
    record['not_run'] = [n for n in collected if n not in outcomes]
    summary: Dict[str, int] = {}
    for row in record['tests']:
        summary[row['outcome']] = summary.get(row['outcome'], 0) + 1
    if record['not_run']:
        summary['not run'] = len(record['not_run'])
    record['summary'] = summary


# ----------------------------------------------------------------------------------------- mmcv's sources
def unpack_sdist(sdist: Path, dest: Path) -> None:
    """Extract mmcv-x.y.z.tar.gz so that ``dest`` is the source tree (with setup.py)."""
    tmp = dest.with_name(dest.name + '.unpacking')
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.isfile() or m.isdir()]
        for member in members:
            if member.name.startswith('/') or '..' in Path(member.name).parts:
                raise RuntimeError(f'{sdist}: unsafe path {member.name!r} in the archive')
        archive.extractall(tmp, members=members)
    (top, ) = [p for p in tmp.iterdir() if p.is_dir()]
    shutil.rmtree(dest, ignore_errors=True)
    top.rename(dest)
    shutil.rmtree(tmp, ignore_errors=True)


def split_top_level(source: str) -> List[str]:
    """Split C++ source into top-level items: declarations end at ';', definitions at their closing brace,
    registration macros at their closing parenthesis (each with a ';' right after it, if any). Comments and
    includes stay attached to the next item."""
    items, depth, start, i = [], 0, 0, 0
    while i < len(source):
        c = source[i]
        if source.startswith('//', i):
            i = source.find('\n', i) + 1 or len(source)
            continue
        if source.startswith('/*', i):
            i = source.find('*/', i) + 2
            continue
        if c == '"':
            i += 1
            while source[i] != '"':
                i += 2 if source[i] == '\\' else 1
        elif c in '({':
            depth += 1
        elif c in ')}':
            depth -= 1
            # A definition ends at its brace; a registration macro at its parenthesis (mmcv sometimes omits
            # the ';' after REGISTER_DEVICE_IMPL(...)).
            if depth == 0 and (c == '}' or re.match(r'\s*REGISTER_DEVICE_IMPL\b',
                                                    re.sub(r'//[^\n]*', '', source[start:i]))):
                j = i + 1
                while j < len(source) and source[j] in ' \t':
                    j += 1
                if j < len(source) and source[j] == ';':
                    i = j
                items.append(source[start:i + 1])
                start = i + 1
        elif c == ';' and depth == 0:
            items.append(source[start:i + 1])
            start = i + 1
        i += 1
    items.append(source[start:])
    return items


def _identifiers(text: str) -> set:
    return set(re.findall(r'[A-Za-z_][A-Za-z0-9_]*', re.sub(r'//[^\n]*|/\*.*?\*/', ' ', text, flags=re.S)))


def _defined_name(item: str) -> Optional[str]:
    """The function an item defines or declares: the identifier before the first '(' at top level."""
    code = re.sub(r'//[^\n]*|/\*.*?\*/|#[^\n]*', ' ', item, flags=re.S).strip()
    if code.startswith('REGISTER_DEVICE_IMPL'):
        return None
    match = re.search(r'([A-Za-z_][A-Za-z0-9_]*)\s*\(', code)
    return match.group(1) if match else None


def prune_cuda_sources(cuda_dir: Path, keep: Sequence[str]) -> List[str]:
    """Keep only the ``keep`` .cu files of mmcv's ``csrc/pytorch/cuda`` and the part of cudabind.cpp they serve.

    cudabind.cpp declares functions defined elsewhere (kernel launchers in the .cu files, ``*_impl`` in
    ``csrc/pytorch/*.cpp``), wraps the launchers in ``*_cuda`` functions and registers those for CUDA. A declared
    function that no kept source mentions any more goes away, then every item that uses a removed name, to a
    fixpoint. Returns the removed .cu files.
    """
    keep = set(keep)
    unknown = keep - {p.stem for p in cuda_dir.glob('*.cu')}
    if unknown:
        raise ValueError(f'{cuda_dir}: no such kernel sources {sorted(unknown)}')
    removed_files = sorted(p.stem for p in cuda_dir.glob('*.cu') if p.stem not in keep)
    sources = [cuda_dir / f'{name}.cu' for name in sorted(keep)] + sorted(cuda_dir.parent.glob('*.cpp'))
    provided = set().union(*(_identifiers(p.read_text(errors='replace')) for p in sources))
    bind = cuda_dir / 'cudabind.cpp'
    items = split_top_level(bind.read_text())
    alive = [True] * len(items)
    removed_names = set()
    for k, item in enumerate(items):  # declarations whose definition went away with its .cu file
        name = _defined_name(item)
        if name and '{' not in item and name not in provided:
            alive[k] = False
            removed_names.add(name)
    changed = True
    while changed:
        changed = False
        for k, item in enumerate(items):
            if alive[k] and _identifiers(item) & removed_names:
                alive[k] = False
                changed = True
                name = _defined_name(item)
                if name and '{' in item:  # a wrapper defined here: whatever uses it goes too
                    removed_names.add(name)
    for name in removed_files:
        (cuda_dir / f'{name}.cu').unlink()
    # A removed item keeps its preprocessor lines (the #includes lead the first declaration).
    kept = [item if a else ''.join(line for line in item.splitlines(keepends=True) if line.lstrip().startswith('#'))
            for item, a in zip(items, alive)]
    bind.write_text('// Pruned by dev/gpu_check (--kernels point): registrations of the kept kernels only.\n'
                    + ''.join(kept))
    return removed_files


def find_cuda_home() -> Optional[Path]:
    """The CUDA toolkit: $CUDA_HOME / $CUDA_PATH, the folder of nvcc (through a wrapper script), /usr/local/cuda*."""
    candidates = [os.environ.get('CUDA_HOME'), os.environ.get('CUDA_PATH')]
    nvcc = shutil.which('nvcc')
    if nvcc:
        real = Path(nvcc).resolve()
        candidates.append(str(real.parent.parent))
        try:  # a wrapper like `exec /usr/local/cuda-13.0/bin/nvcc "$@"`
            head = real.read_bytes()[:2000].decode('utf-8', 'ignore')
            candidates += [m.group(1) for m in re.finditer(r'(/\S+)/bin/nvcc', head)]
        except OSError:
            pass
    candidates += ['/usr/local/cuda'] + sorted(map(str, Path('/usr/local').glob('cuda-*')), reverse=True)
    for c in candidates:
        if c and (Path(c) / 'bin' / 'nvcc').exists() and (Path(c) / 'include' / 'cuda_runtime_api.h').exists():
            return Path(c)
    return None


def cuda_include_dirs(cuda_home: Path, torch_dir: str) -> List[str]:
    """Header folders of torch's pip CUDA packages (nvidia/*/include), needed when the toolkit lacks the
    cuSPARSE / cuBLAS / cuSOLVER headers that torch's ATen/cuda headers include."""
    if (cuda_home / 'include' / 'cusparse.h').exists():
        return []
    site = Path(torch_dir).parent
    return sorted(str(p) for p in site.glob('nvidia/*/include') if p.is_dir())


# --------------------------------------------------------------------------------------------------- main
def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    check = GPUCheck(args)
    check.say(f'phases {", ".join(args.phases)}; python {check.python}; work {check.work}; out {check.out}')
    return check.run()


if __name__ == '__main__':
    sys.exit(main())
