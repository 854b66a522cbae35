"""dev/gpu_check without a GPU: arguments and phases, budgets that stop a phase, the report and the docs section
made from it, the wheel list against requirements/, the CUDA test set, mmcv source pruning, the import-time
stand-ins, the pytest plugin and a benchmark item at toy size."""
import ast
import json
import math
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / 'dev' / 'gpu_check'
sys.path.insert(0, str(HERE))
import bench  # noqa: E402
import gpu_check  # noqa: E402
import gpu_report  # noqa: E402


def make_check(tmp_path, *argv, clock=None):
    args = gpu_check.parse_args(['--work', str(tmp_path / 'work'), '--out', str(tmp_path / 'out'), *argv])
    return gpu_check.GPUCheck(args, clock=clock)


class FakeClock(gpu_check.Clock):
    """A clock that moves only when told to."""

    def __init__(self, total):
        self.t = 0.0
        super().__init__(total, now=lambda: self.t)


# ----------------------------------------------------------------------------------------- arguments
def test_phase_selection_and_arguments(monkeypatch):
    assert gpu_check.select_phases('all') == ['build', 'bench', 'test']  # timings before the tests
    assert gpu_check.select_phases('test, bench') == ['test', 'bench']  # the order given
    assert gpu_check.select_phases('build,test') == ['build', 'test']
    with pytest.raises(ValueError, match=r"unknown phase\(s\) \['tests'\]"):
        gpu_check.select_phases('build,tests')
    with pytest.raises(ValueError, match='build must come first'):
        gpu_check.select_phases('bench,build')
    with pytest.raises(ValueError, match='bench given twice'):
        gpu_check.select_phases('bench,test,bench')
    monkeypatch.setenv('OUT', '/results')
    args = gpu_check.parse_args(['--phase', 'test', '--budget-test', '90', '--bench-items', 'point_ops'])
    assert args.phases == ['test'] and args.budget_test == 90 and args.out == '/results'
    assert args.bench_items == ['point_ops'] and args.mmcv == 'auto' and args.kernels == 'point'
    monkeypatch.delenv('OUT')
    assert gpu_check.parse_args([]).out == str(ROOT / 'work_dirs' / 'gpu_check')
    with pytest.raises(SystemExit):
        gpu_check.parse_args(['--bench-items', 'sam'])


def test_run_sh_passes_arguments_and_its_python():
    """run.sh runs the driver with --python's interpreter (here /bin/echo shows the command line)."""
    out = subprocess.run(['bash', str(HERE / 'run.sh'), '--phase', 'test', '--python', '/bin/echo'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split() == [
        'dev/gpu_check/gpu_check.py', '--phase', 'test', '--python', '/bin/echo']


# ------------------------------------------------------------------------------------ budgets, phases
def _alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(')')[-1].split()[0] != 'Z'  # a zombie has ended
    except FileNotFoundError:
        return False


def test_run_logged_stops_the_whole_process_group_at_the_budget(tmp_path):
    """A child that started a long grandchild: at the budget both are gone (ninja and its compilers, pytest and
    its subprocesses)."""
    child = ('import subprocess, sys, time; p = subprocess.Popen([sys.executable, "-c", "import time; '
             'time.sleep(60)"]); print("grandchild", p.pid, flush=True); time.sleep(60)')
    start = time.monotonic()
    rc, timed_out = gpu_check.run_logged([sys.executable, '-c', child], tmp_path / 'log', timeout=3)
    assert (rc, timed_out) == (None, True) and time.monotonic() - start < 20
    pid = int(re.search(r'grandchild (\d+)', (tmp_path / 'log').read_text()).group(1))
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), 'the grandchild survived the budget'
    rc, timed_out = gpu_check.run_logged([sys.executable, '-c', 'print("hi")'], tmp_path / 'log', timeout=30)
    assert (rc, timed_out) == (0, False) and 'hi' in (tmp_path / 'log').read_text()


def test_bench_phase_keeps_finished_items_survives_a_crash_and_stops_at_its_budget(tmp_path, monkeypatch):
    clock = FakeClock(10_000)
    check = make_check(tmp_path, '--phase', 'bench', '--budget-bench', '100', clock=clock)
    monkeypatch.setattr(check, 'ensure_stack_for', lambda record: True)
    durations = dict(stage1_step=40, sam_vit_h_amg=30, dinov2_vit_b=30)
    calls = []

    def fake_bench(cmd, log, timeout, env=None, **kwargs):
        """bench.py: items in order, each 'taking' its duration; stage 2 crashes the process."""
        names = [a for a in cmd[2:cmd.index('--out-dir')]]
        out = Path(cmd[cmd.index('--out-dir') + 1])
        calls.append(names)
        start = clock.t
        assert start + timeout + gpu_check.KILL_GRACE_S <= 100  # killed, at worst, by the phase's end
        for name in names:
            if name == 'stage2_step':
                clock.t += 5
                return 1, False
            if clock.t + durations.get(name, 30) > start + timeout:  # stopped after its first part
                (out / f'{name}.partial.json').write_text(json.dumps(dict(item=name, parts=dict(
                    network=dict(what='the network alone', median_s=0.03)))))
                clock.t = start + timeout
                return None, True
            clock.t += durations.get(name, 30)
            (out / f'{name}.json').write_text(json.dumps(dict(
                what=name, median_s=0.5, min_s=0.4, peak_memory_mib=100.0, batch_per_gpu=16, epochs=120)))
        return 0, False

    monkeypatch.setattr(gpu_check, 'run_logged', fake_bench)
    assert check.run() == 1
    phase = json.loads((tmp_path / 'out' / 'gpu_report.json').read_text())['phases']['bench']
    assert calls == [list(bench.ITEMS), list(bench.ITEMS[2:])]  # restarted after the crash
    assert [phase['items'][n]['status'] for n in bench.ITEMS] == [
        'done', 'failed', 'done', 'stopped', 'not run', 'not run', 'not run']
    assert phase['items']['stage2_step']['reason'].startswith('bench.py exited 1')
    stopped = phase['items']['dinov2_vit_b']
    assert stopped['reason'] == 'the phase budget ran out during this item'
    assert stopped['parts'] == dict(network=dict(what='the network alone', median_s=0.03))  # its finished part
    assert phase['status'] == 'failed' and 'stage2_step' in phase['note']
    steps = 120 * math.ceil(78_000 / (16 * 4))  # the projection, computed here from its definition
    assert phase['projections']['stage1_wall_hours']['value'] == pytest.approx(steps * 0.5 / 3600)
    assert 'label_gpu_hours' not in phase['projections']  # DINOv2 did not finish
    md = (tmp_path / 'out' / 'gpu_report.md').read_text()
    assert '## bench: failed' in md and '| point_ops |' in md and 'not run' in md


def test_test_outcomes_reach_out_as_each_test_finishes(tmp_path, monkeypatch):
    """The pytest plugin appends to --out ($OUT) itself, and the report there follows each outcome: a call stopped
    from outside still returns every test that finished."""
    clock = FakeClock(1000)
    check = make_check(tmp_path, '--phase', 'test', clock=clock)
    check.stack_ready = True
    out = tmp_path / 'out'
    finished = ['tests/cuda/test_a.py::test_cuda_one', 'tests/cuda/test_a.py::test_cuda_two']
    seen_in_report = []

    def fake_pytest(cmd, log, timeout, env=None, on_tick=None, **kwargs):
        outcomes = Path(env['SAM_MTP_TEST_LOG'])
        assert outcomes.parent == out  # written where the device tool collects it
        with open(outcomes, 'a') as f:
            f.write(json.dumps(dict(collected=finished + ['tests/cuda/test_b.py::test_cuda_three'])) + '\n')
        for nodeid in finished:
            with open(outcomes, 'a') as f:
                f.write(json.dumps(dict(nodeid=nodeid, outcome='passed', duration_s=2.0, reason='')) + '\n')
            clock.t += 2
            on_tick()
            report = json.loads((out / 'gpu_report.json').read_text())
            seen_in_report.append([t['nodeid'] for t in report['phases']['test']['tests']])
        clock.t += timeout
        return None, True  # stopped at the budget in the third test

    monkeypatch.setattr(gpu_check, 'run_logged', fake_pytest)
    assert check.run() == 1
    assert seen_in_report == [finished[:1], finished]
    rows = gpu_check.read_jsonl(out / gpu_check.TEST_OUTCOMES)
    assert [r['nodeid'] for r in rows if 'outcome' in r] == finished
    phase = json.loads((out / 'gpu_report.json').read_text())['phases']['test']
    assert phase['status'] == 'stopped' and phase['not_run'] == ['tests/cuda/test_b.py::test_cuda_three']


def test_out_holds_the_report_outcomes_and_logs_within_the_device_tools_limits(tmp_path, monkeypatch):
    """What the device tool returns from $OUT: at most 8 files, 16 MiB each, at most 2 folders down, names of
    letters, digits, '.', '_', '-'. The logs travel in one archive, each cut to its end."""
    check = make_check(tmp_path, '--phase', 'bench,test', clock=FakeClock(100))
    logs = tmp_path / 'work' / 'logs'
    big = os.urandom(20 * 2**20)  # incompressible: the archive's size comes from the cut, not from gzip
    monkeypatch.setattr(gpu_check.GPUCheck, 'phase_bench', lambda self, record: (
        (logs / 'bench.log').write_bytes(big), 'done')[1])
    monkeypatch.setattr(gpu_check.GPUCheck, 'phase_test', lambda self, record: (
        (logs / 'test.log').write_text('PASSED tests/cuda/test_a.py::test_cuda_one\n'),
        (tmp_path / 'out' / gpu_check.TEST_OUTCOMES).write_text('{}\n'), 'done')[2])
    for name in ('install.log', 'mmcv-cuda-torch2.11.0-cp312-sm90-point.log', 'mmcv-cpu-torch2.11.0-cp312.log'):
        (logs / name).write_text(f'{name} compiled\n' * 1000)
    assert check.run() == 0
    files = [p for p in (tmp_path / 'out').rglob('*') if p.is_file()]
    assert len(files) <= 8
    for path in files:
        rel = path.relative_to(tmp_path / 'out')
        assert len(rel.parts) <= 3 and all(re.fullmatch(r'[A-Za-z0-9._-]+', part) for part in rel.parts), rel
        assert path.stat().st_size <= 16 * 2**20, rel
    assert {p.name for p in files} == {'gpu_report.json', 'gpu_report.md', gpu_check.TEST_OUTCOMES,
                                       gpu_check.LOG_ARCHIVE}
    import tarfile
    with tarfile.open(tmp_path / 'out' / gpu_check.LOG_ARCHIVE) as tar:
        logs_back = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert set(logs_back) == {f'logs/{p.name}' for p in logs.iterdir()}
    assert logs_back['logs/test.log'] == b'PASSED tests/cuda/test_a.py::test_cuda_one\n'
    cut = logs_back['logs/bench.log']
    header, kept = cut.split(b'\n', 1)
    assert big.endswith(kept) and len(kept) >= 2 * 2**20  # the end of the log, a fair share of it
    assert header == f'[the first {len(big) - len(kept):,} of {len(big):,} bytes of this log were cut]'.encode()


def test_test_outcomes_are_summarised_with_tests_that_never_ran():
    record = {}
    gpu_check.summarise_tests(record, [
        dict(collected=['a::x', 'a::y', 'b::z', 'b::w']),
        dict(nodeid='a::x', outcome='passed', duration_s=1.0, reason=''),
        dict(nodeid='a::y', outcome='passed', duration_s=1.0, reason=''),
        dict(nodeid='a::y', outcome='error', duration_s=0.1, reason='teardown broke'),  # after its pass
        dict(nodeid='b::z', outcome='skipped', duration_s=0.0, reason='needs a CUDA device'),
    ])
    assert record['summary'] == {'passed': 1, 'error': 1, 'skipped': 1, 'not run': 1}
    assert record['not_run'] == ['b::w']
    assert [t['outcome'] for t in record['tests']] == ['passed', 'error', 'skipped']


def test_reports_accumulate_over_calls_and_are_written_atomically(tmp_path, monkeypatch):
    first = make_check(tmp_path, '--phase', 'test', clock=FakeClock(100))
    monkeypatch.setattr(gpu_check.GPUCheck, 'phase_test', lambda self, record: 'done')
    monkeypatch.setattr(gpu_check.GPUCheck, 'phase_bench', lambda self, record: record.update(items={}) or 'done')
    assert first.run() == 0
    second = make_check(tmp_path, '--phase', 'bench', clock=FakeClock(100))  # a later call, same machine
    assert second.run() == 0
    report = json.loads((tmp_path / 'out' / 'gpu_report.json').read_text())
    assert set(report['phases']) == {'test', 'bench'} and len(report['calls']) == 2
    assert report['commit']['commit'] != 'unknown'  # this checkout has git
    assert not [p for p in (tmp_path / 'out').iterdir() if 'tmp' in p.name]
    fresh = make_check(tmp_path, '--phase', 'bench', '--fresh', clock=FakeClock(100))
    assert fresh.run() == 0
    assert set(json.loads((tmp_path / 'out' / 'gpu_report.json').read_text())['phases']) == {'bench'}


def test_mmcv_build_policy(tmp_path, monkeypatch):
    """auto: a finished build of an earlier call is reused; else CUDA first, keeping time for the CPU-only
    build, which serves when the CUDA build stops (fallback mode)."""
    check = make_check(tmp_path, '--phase', 'build', clock=FakeClock(1000))
    check.clock.begin_phase(400)
    check._torch_info = dict(torch='2.11.0+cu130', python_tag='cp312', capability='9.0', cuda_available=True,
                             torch_cuda='13.0')
    monkeypatch.setattr(check, 'cuda_build_possible', lambda record: True)
    calls = []

    def build(record, kind, timeout):
        calls.append((kind, timeout))
        return kind == 'cpu'

    monkeypatch.setattr(check, 'build_mmcv', build)

    def mark_build(kind, marker, text='{}'):
        """What an earlier call left in the ``kind`` build folder: a ``.complete`` or ``.failed`` marker."""
        path = check.mmcv_build_dir(kind) / marker
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def ensure_mmcv_again():
        calls.clear()
        check.extra_paths = []
        check.ensure_mmcv({})

    check.ensure_mmcv({})
    # each build ends, its kill included, by the phase's deadline
    grace = gpu_check.KILL_GRACE_S
    assert calls == [('cuda', 400 - grace - gpu_check.CPU_BUILD_RESERVE), ('cpu', 400 - grace)]
    assert check.extra_paths == [check.mmcv_build_dir('cpu') / 'src']
    # A later call: the CPU build is cached, so the CUDA build may use the whole budget (ninja resumes it) ...
    mark_build('cpu', '.complete')
    ensure_mmcv_again()
    assert calls == [('cuda', 400 - grace)] and check.extra_paths == [check.mmcv_build_dir('cpu') / 'src']
    # A CUDA build that failed in an earlier call is not retried in auto mode (the cached CPU build serves).
    failed = mark_build('cuda', '.failed', 'exit 1: nvcc error')
    ensure_mmcv_again()
    assert not calls and check.extra_paths == [check.mmcv_build_dir('cpu') / 'src']
    failed.unlink()
    # ... and once it has finished, nothing is built again.
    mark_build('cuda', '.complete')
    ensure_mmcv_again()
    assert not calls and check.extra_paths == [check.mmcv_build_dir('cuda') / 'src']
    assert check.mmcv_build_dir('cuda').name == 'cuda-torch2.11.0-cp312-sm90-point'
    assert check.finished_builds() == [check.mmcv_build_dir('cuda'), check.mmcv_build_dir('cpu')]


def _fake_stack(env_path: str, work: Path, cuda=None):
    """What PROBE_MODULES prints for the stack: it imports once an mmcv build of ``work`` is on ``env_path``
    (its CUDA ``cuda``, None: CPU-only); before, mmcv.ops does not."""
    stack = {m: dict(ok=True, version='1.0', file='', shim=False) for m in gpu_check.STACK_MODULES}
    stack['mmcv.ops']['cuda'] = cuda
    stack['projects.sam_mtp.ops'] = dict(ok=True, version='', file='', shim=False,
                                         routing=dict(knn='mmcv' if cuda else 'pytorch'))
    if str(work / 'mmcv') not in env_path:
        stack['mmcv.ops'] = dict(ok=False, error='ModuleNotFoundError: No module named mmcv._ext')
    return stack


def _fake_build_machine(check, tmp_path, monkeypatch):
    """A machine where the install is done and mmcv's build is a fake: setup.py 'compiles' _ext*.so."""
    check._torch_info = dict(torch='2.11.0+cu130', python_tag='cp312', capability='9.0', cuda_available=True,
                             torch_cuda='13.0', python='3.12.3', torch_dir='/torch')
    monkeypatch.setattr(check, 'install_wheels', lambda record: None)
    monkeypatch.setattr(check, 'add_shims', lambda record: None)
    monkeypatch.setattr(gpu_check, 'find_cuda_home', lambda: tmp_path / 'cuda')
    monkeypatch.setattr(gpu_check, 'cuda_include_dirs', lambda cuda_home, torch_dir: [])
    (tmp_path / 'whl').mkdir(exist_ok=True)
    (tmp_path / 'whl' / f'mmcv-{gpu_check.MMCV_VERSION}.tar.gz').write_bytes(b'sdist')
    for kind in ('cuda', 'cpu'):  # sources already unpacked (an earlier, interrupted call)
        (check.mmcv_build_dir(kind) / 'src' / 'mmcv').mkdir(parents=True)


def test_a_cuda_build_whose_import_crashes_falls_back_to_the_cpu_build(tmp_path, monkeypatch):
    """The H200 run: the CUDA build finished, then the import probe of its mmcv.ops died (SIGSEGV). --mmcv auto
    marks that build failed with the reason, builds the CPU-only ops, records why the mode is fallback, and the
    bench and test phases still run."""
    clock = FakeClock(gpu_check.DEFAULT_TOTAL_BUDGET)
    check = make_check(tmp_path, '--phase', 'build,bench,test', '--wheels', str(tmp_path / 'whl'), clock=clock)
    _fake_build_machine(check, tmp_path, monkeypatch)
    builds = []

    def fake_setup_py(cmd, log, timeout, env=None, cwd=None, **kwargs):
        builds.append((Path(cwd).parent.name.split('-')[0], timeout))
        clock.t += 60
        (Path(cwd) / 'mmcv' / '_ext.cpython-312-x86_64-linux-gnu.so').write_bytes(b'elf')
        return 0, False

    crash = ('/usr/bin/python3 could not run a probe (killed by SIGSEGV; modules mmcv.ops): Fatal Python error: '
             'Segmentation fault')

    def fake_probe(code, *modules, env=None, **kwargs):
        path = (env or check.env())['PYTHONPATH']
        if str(check.mmcv_build_dir('cuda')) in path:
            assert modules == ('mmcv.ops', )  # only build_mmcv's check of the build it just made sees it
            raise RuntimeError(crash)
        return _fake_stack(path, check.work)

    ran = []

    def fake_phase(self, record):
        ran.append(self.phase)
        return 'done' if self.ensure_stack_for(record) else 'failed'

    monkeypatch.setattr(gpu_check, 'run_logged', fake_setup_py)
    monkeypatch.setattr(check, 'probe', fake_probe)
    monkeypatch.setattr(gpu_check.GPUCheck, 'phase_bench', fake_phase)
    monkeypatch.setattr(gpu_check.GPUCheck, 'phase_test', fake_phase)
    assert check.run() == 0
    deadline = 400 - gpu_check.KILL_GRACE_S  # the build phase's, less the kill
    assert builds == [('cuda', deadline - gpu_check.CPU_BUILD_RESERVE), ('cpu', deadline - 60)]
    failed = check.mmcv_build_dir('cuda') / '.failed'
    assert 'killed by SIGSEGV' in failed.read_text()  # a later auto call does not build it again
    assert (check.mmcv_build_dir('cpu') / '.complete').exists()
    assert not (check.mmcv_build_dir('cuda') / '.complete').exists()
    report = json.loads((tmp_path / 'out' / 'gpu_report.json').read_text())
    steps = {s['name']: s for s in report['phases']['build']['steps']}
    assert steps['mmcv cuda']['status'] == 'failed' and 'killed by SIGSEGV' in steps['mmcv cuda']['detail']
    assert steps['mmcv cpu']['status'] == 'done'
    assert report['mode'] == 'fallback' and 'killed by SIGSEGV' in report['mode_reason']
    assert ran == ['bench', 'test'] and report['phases']['bench']['status'] == 'done'
    assert report['phases']['test']['status'] == 'done'
    assert 'killed by SIGSEGV' in (tmp_path / 'out' / 'gpu_report.md').read_text()


def test_the_bench_runs_before_the_tests_which_get_the_time_left(tmp_path, monkeypatch):
    clock = FakeClock(gpu_check.DEFAULT_TOTAL_BUDGET)
    check = make_check(tmp_path, clock=clock)  # --phase all
    spent = dict(build=142, bench=180, test=0)
    order = []

    def fake_phase(self, record):
        order.append((self.phase, record['budget_s']))
        clock.t += spent[self.phase]
        return 'done'

    for name in gpu_check.PHASES:
        monkeypatch.setattr(gpu_check.GPUCheck, f'phase_{name}', fake_phase)
    assert check.run() == 0
    total = gpu_check.DEFAULT_TOTAL_BUDGET
    assert order == [('build', 400), ('bench', 210), ('test', total - 142 - 180)]
    # a budget given for the last phase is kept
    clock = FakeClock(total)
    order.clear()
    check = make_check(tmp_path, '--phase', 'bench,test', '--budget-test', '100', '--budget-bench', '50',
                       clock=clock)
    assert check.run() == 0 and order == [('bench', 50), ('test', 100)]


def test_a_call_ends_30_s_under_the_command_limit_kills_included(tmp_path, monkeypatch):
    """Every subprocess runs to its timeout and then takes the longest kill (SIGTERM ignored, SIGKILL after the
    waits): the call still ends 30 s or more under the device tool's 600-s command limit."""
    assert gpu_check.KILL_GRACE_S >= 15 + 5  # _kill_group's waits
    clock = FakeClock(gpu_check.parse_args([]).budget_total)
    check = make_check(tmp_path, '--wheels', str(tmp_path / 'whl'), '--budget-build', '300', clock=clock)
    _fake_build_machine(check, tmp_path, monkeypatch)
    ran = []

    def slowest(cmd, log, timeout, env=None, cwd=None, **kwargs):
        ran.append((check.phase, cmd[1] if check.phase == 'bench' else None))
        if check.phase == 'build' and Path(cwd).parent.name.startswith('cpu'):  # finishes (94 s on the H200)
            clock.t += 94
            (Path(cwd) / 'mmcv' / '_ext.so').write_bytes(b'elf')
            return 0, False
        clock.t += max(0, timeout) + 15 + 5
        return None, True

    def probe(code, *modules, env=None, **kwargs):
        clock.t += 10
        return _fake_stack((env or check.env())['PYTHONPATH'], check.work)

    monkeypatch.setattr(gpu_check, 'run_logged', slowest)
    monkeypatch.setattr(check, 'probe', probe)
    check.run()
    # the CUDA build stopped, the CPU build, bench.py stopped, pytest stopped
    assert ran == [('build', None), ('build', None), ('bench', str(HERE / 'bench.py')), ('test', None)]
    assert clock.t <= 600 - 30
    report = json.loads((tmp_path / 'out' / 'gpu_report.json').read_text())
    assert [report['phases'][p]['status'] for p in ('build', 'bench', 'test')] == ['done', 'stopped', 'stopped']


def test_install_keeps_the_machines_own_build_of_if_absent_wheels(tmp_path, monkeypatch):
    wheels = tmp_path / 'whl'
    wheels.mkdir()
    for name, pin in gpu_check.read_wheel_list().items():
        (wheels / f'{name.replace("-", "_")}-{pin.version}-py3-none-any.whl').write_bytes(b'x')
    check = make_check(tmp_path, '--wheels', str(wheels), clock=FakeClock(100))
    monkeypatch.setattr(check, 'probe', lambda code, *names, **kw: {
        n: dict(ok=n == 'torchvision', version='0.26.0') for n in names})
    installed = []

    def fake_pip(cmd, log, timeout, env=None, **kwargs):
        installed.extend(Path(a).name for a in cmd if a.endswith('.whl'))
        return 0, False

    monkeypatch.setattr(gpu_check, 'run_logged', fake_pip)
    record = {}
    check.install_wheels(record)
    names = {gpu_check.wheel_name(Path(w)) for w in installed}
    assert 'torchvision' not in names and 'pillow' in names and 'mmdet3d' in names
    assert "kept the machine's torchvision" in record['steps'][-1]['detail']
    check.install_wheels(record)  # the same wheels again: cached
    assert record['steps'][-1]['status'] == 'cached'
    (wheels / 'mmdet3d-1.4.0-py3-none-any.whl').unlink()
    with pytest.raises(RuntimeError, match='lacks mmdet3d of wheels.txt: rerun prepare.sh'):
        check.install_wheels({})


def test_stand_ins_only_for_absent_modules(tmp_path, monkeypatch):
    wheels = tmp_path / 'whl'
    (wheels / 'scipy_lsap').mkdir(parents=True)
    (wheels / 'scipy_lsap' / '_lsap.cpython-312-x86_64-linux-gnu.so').write_bytes(b'elf')
    check = make_check(tmp_path, '--wheels', str(wheels), clock=FakeClock(100))
    monkeypatch.setattr(check, 'probe', lambda code, *names, **kw: dict(version=None) if not names else {
        n: dict(ok=n == 'cv2', version='4.10') for n in names})
    record = {}
    check.add_shims(record)
    assert not (tmp_path / 'work' / 'site' / 'transformers-0.dist-info').exists()
    shims = tmp_path / 'work' / 'shims'
    assert sorted(p.name for p in shims.iterdir()) == ['numba', 'scipy']
    assert (shims / 'scipy' / 'optimize' / '_lsap.cpython-312-x86_64-linux-gnu.so').exists()
    assert check.shim_paths == [shims] and check.report['shims'] == ['numba', 'scipy']
    assert check.env()['PYTHONPATH'].split(os.pathsep).index(str(shims)) > 0  # after the repository
    assert str(shims) not in check.env(shims=False)['PYTHONPATH']  # mmcv's build imports cv2 for real


def test_a_transformers_that_breaks_mmpretrain_is_masked_from_its_version_check(tmp_path, monkeypatch):
    """mmpretrain 1.2.0 imports its BLIP models when transformers >= 4.28 is installed, and newer releases lack
    names they import (the H200 run: 'NoneType takes no arguments'). The check then shadows the distribution's
    metadata with version 0 in its install directory, and mmpretrain's own check says 'not satisfied'."""
    import subprocess
    import sys
    check = make_check(tmp_path, clock=FakeClock(100))
    check.target.mkdir(parents=True)
    machine = tmp_path / 'machine' / 'transformers-5.0.0.dist-info'  # the machine's own installation
    machine.mkdir(parents=True)
    (machine / 'METADATA').write_text('Metadata-Version: 2.1\nName: transformers\nVersion: 5.0.0\n')
    code = ('from mmpretrain.utils.dependency import satisfy_requirement; '
            'print(satisfy_requirement("transformers>=4.28.0"), satisfy_requirement("numpy>=1.0"))')
    path = [str(check.target), str(machine.parent), os.environ.get('PYTHONPATH', '')]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))

    def mmpretrain_sees():
        return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env,
                              check=True).stdout.split()

    assert mmpretrain_sees() == ['True', 'True']
    monkeypatch.setattr(check, 'probe', lambda code, *a, **kw: dict(version='5.0.0', mmpretrain_compatible=False))
    assert check.mask_incompatible_transformers() == "transformers 5.0.0 masked from mmpretrain's version check"
    assert mmpretrain_sees() == ['False', 'True']
    monkeypatch.setattr(check, 'probe', lambda code, *a, **kw: dict(version='4.40.0', mmpretrain_compatible=True))
    assert check.mask_incompatible_transformers() is None
    assert not (check.target / 'transformers-0.dist-info').exists()


# ------------------------------------------------------------------------------------- the stand-ins
def _load(name, path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_numba_and_cv2_stand_ins():
    numba = _load('numba_stand_in', gpu_check.STAND_IN_DIR / 'numba_stand_in.py')

    @numba.njit(cache=True)
    def add(a, b):
        return a + b

    assert add(2, 3) == 5 and numba.jit(add) is add and numba.cuda.jit('(float32[:],)')(add) is add
    with pytest.raises(AttributeError, match='replaced it by an import-time stand-in'):
        numba.typed  # noqa: B018
    errors = _load('numba_stand_in_errors', gpu_check.STAND_IN_DIR / 'numba_core_errors_stand_in.py')
    assert issubclass(errors.NumbaPerformanceWarning, Warning)  # mmdet3d filters it at import
    cv2 = _load('cv2_stand_in', gpu_check.STAND_IN_DIR / 'cv2_stand_in.py')
    assert isinstance(cv2.INTER_LINEAR, int) and cv2.INTER_LINEAR != cv2.INTER_NEAREST
    assert cv2.INTER_LINEAR == cv2.INTER_LINEAR and cv2.setNumThreads(0) is None
    with pytest.raises(RuntimeError, match='cv2.imread: OpenCV is not installed here; the GPU check replaced it'):
        cv2.imread('frame.jpg')


def test_scipy_stand_in_has_only_the_real_linear_sum_assignment(tmp_path):
    scipy = pytest.importorskip('scipy')
    lsap = list(Path(scipy.__file__).parent.glob('optimize/_lsap*.so'))
    if not lsap:
        pytest.skip('this scipy has no _lsap extension')
    import shutil
    shim = gpu_check.write_stand_in('scipy', tmp_path)
    shutil.copy(lsap[0], shim / 'optimize')
    code = textwrap.dedent('''
        import numpy as np, scipy
        from scipy.optimize import linear_sum_assignment
        assert scipy.SAM_MTP_IMPORT_SHIM
        rows, cols = linear_sum_assignment(np.array([[4., 1., 3.], [2., 0., 5.], [3., 2., 2.]]))
        print(rows.tolist(), cols.tolist())
        from scipy.sparse import csr_matrix  # mmdet imports it at module level
        try:
            csr_matrix(1)
        except RuntimeError as error:
            print(error)
    ''')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first == '[0, 1, 2] [1, 0, 2]'  # cost 1 + 2 + 2, the optimum of this matrix
    assert 'scipy.sparse.csr_matrix: scipy is not installed here; the GPU check replaced it' in second


def test_stand_ins_are_written_as_packages_and_nothing_in_the_repository_bears_their_names(tmp_path):
    """The templates become importable as numba / cv2 / scipy only where the check writes them; from the
    repository's own paths (what the check's subprocesses get before the stand-ins) the real packages import."""
    for name in gpu_check.STAND_INS:
        gpu_check.write_stand_in(name, tmp_path)
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob('*.py'))
    assert written == ['cv2/__init__.py', 'numba/__init__.py', 'numba/core/__init__.py', 'numba/core/errors.py',
                       'scipy/__init__.py', 'scipy/optimize/__init__.py']
    code = ('import cv2, numba, numba.core.errors, scipy\n'
            'print([getattr(m, "SAM_MTP_IMPORT_SHIM", False) for m in (cv2, numba, scipy)],'
            ' issubclass(numba.core.errors.NumbaPerformanceWarning, Warning))')

    def shims_imported(*paths):
        out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                             env=dict(os.environ, PYTHONPATH=os.pathsep.join(str(p) for p in paths)))
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    assert shims_imported(tmp_path) == ['[True,', 'True,', 'True]', 'True']
    repository = [ROOT, ROOT / 'tests', HERE]  # the check's paths before the stand-ins (GPUCheck.env)
    assert shims_imported(*repository) == ['[False,', 'False,', 'False]', 'True']
    named = [p for top in ('benchmarks', 'configs', 'dev', 'projects', 'tests', 'tools')
             for p in (ROOT / top).rglob('*') if p.stem in gpu_check.STAND_INS]
    assert not named, f'named like a replaced package: {named}'


def test_wheels_travel_as_stored_zips_in_an_xz_archive(tmp_path):
    import tarfile
    import zipfile

    import wheel_pack
    src = tmp_path / 'src'
    src.mkdir()
    members = {'pkg/__init__.py': b'x = 1\n' * 200, 'pkg-1.0.dist-info/RECORD': b'pkg/__init__.py,sha256=abc,1200\n'}
    with zipfile.ZipFile(src / 'pkg-1.0-py3-none-any.whl', 'w', zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    (stored, ) = wheel_pack.store_wheels(src, tmp_path / 'stored')
    with zipfile.ZipFile(stored) as z:
        assert {i.filename: z.read(i) for i in z.infolist()} == members
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
    archive = tmp_path / wheel_pack.ARCHIVE
    with tarfile.open(archive, 'w:xz') as tar:
        tar.add(tmp_path / 'stored', '.')
    unpacked = wheel_pack.unpack_wheels(archive, tmp_path / 'work' / 'wheels')
    assert [p.name for p in unpacked] == ['pkg-1.0-py3-none-any.whl']
    unpacked[0].write_bytes(b'touched')  # a second call with the same archive does not extract again
    assert wheel_pack.unpack_wheels(archive, tmp_path / 'work' / 'wheels')[0].read_bytes() == b'touched'


# ----------------------------------------------------------------------------------- the pytest plugin
def test_pytest_plugin_records_each_outcome_and_skips_stand_in_failures(tmp_path):
    (tmp_path / 'test_sample.py').write_text(textwrap.dedent('''
        import pytest
        def test_pass():
            pass
        def test_fail():
            assert 1 == 2, 'one is not two'
        @pytest.mark.skipif(True, reason='needs a CUDA device')
        def test_skip():
            pass
        def test_stand_in():
            raise RuntimeError('cv2.resize: OpenCV is not installed here; the GPU check replaced it by an '
                               'import-time stand-in (dev/gpu_check/stand_ins/cv2_stand_in.py).')
    '''))
    (tmp_path / 'pytest.ini').write_text('[pytest]\n')
    log = tmp_path / 'log.jsonl'
    subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'gpu_check_pytest_plugin', '-p', 'no:cacheprovider',
                    'test_sample.py'], cwd=tmp_path, capture_output=True, timeout=120,
                   env=dict(os.environ, SAM_MTP_TEST_LOG=str(log), PYTHONPATH=str(HERE)))
    rows = gpu_check.read_jsonl(log)
    assert rows[0] == dict(collected=[f'test_sample.py::test_{n}' for n in ('pass', 'fail', 'skip', 'stand_in')])
    outcomes = {r['nodeid'].split('::')[1]: (r['outcome'], r['reason']) for r in rows[1:]}
    assert outcomes['test_pass'] == ('passed', '')
    assert outcomes['test_fail'][0] == 'failed' and 'one is not two' in outcomes['test_fail'][1]
    assert outcomes['test_skip'] == ('skipped', 'needs a CUDA device')
    assert outcomes['test_stand_in'][0] == 'skipped'
    assert outcomes['test_stand_in'][1].startswith('absent on this machine: cv2.resize: OpenCV is not installed')


# ---------------------------------------------------------------------------------- wheels, test set
def test_wheel_list_agrees_with_the_lock():
    """Versions come from requirements/lock.txt (dev/update_lock.py derives them; tests/dev/test_lock.py checks the
    derivation); here: the OpenMMLab stack, the stand-in policy and mmcv's version agree across the check's files."""
    lock = {}
    for line in (ROOT / 'requirements' / 'lock.txt').read_text().splitlines():
        line = line.split('#')[0].strip()
        if line:
            name, version = line.split('==')
            lock[gpu_check.normalise_name(name)] = version
    wheels = gpu_check.read_wheel_list()
    for name, pin in wheels.items():
        if '!= lock' not in pin.comment:
            assert pin.version == lock[name], f'{name}=={pin.version} but requirements/lock.txt has {lock[name]}'
    for name in ('numpy', 'mmengine', 'mmdet', 'mmdet3d', 'mmpretrain', 'segment-anything'):
        assert wheels[name].version == lock[name] and '!= lock' not in wheels[name].comment, name
    assert {p.if_absent for p in wheels.values() if p.if_absent} == {'torchvision', 'PIL'}
    prepare = (HERE / 'prepare.sh').read_text()
    setup_env = (ROOT / 'tools' / 'setup_env.sh').read_text()
    mmcv = re.search(r'MMCV_SDIST="mmcv==([\d.]+)"', prepare).group(1)
    assert mmcv == gpu_check.MMCV_VERSION == re.search(r'MMCV_VERSION=([\d.]+)', setup_env).group(1) == lock['mmcv']
    scipy = re.search(r'SCIPY_FOR_LSAP="scipy==([\d.]+)"', prepare).group(1)
    assert scipy == lock['scipy']


def _cuda_gated_tests():
    """(file, test name) of every test skipped without CUDA (a skipif on torch.cuda.is_available())."""
    found = []
    for path in sorted((ROOT / 'tests').rglob('test_*.py')):
        tree = ast.parse(path.read_text())
        module_gated = any(isinstance(node, ast.Assign) and any(getattr(t, 'id', '') == 'pytestmark'
                                                                for t in node.targets)
                           and 'cuda.is_available' in ast.unparse(node.value) for node in tree.body)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith('test'):
                gated = any('skipif' in ast.unparse(d) and 'not torch.cuda.is_available' in ast.unparse(d)
                            for d in node.decorator_list)
                if gated or module_gated:
                    found.append((path.relative_to(ROOT).as_posix(), node.name))
    return found


def test_every_test_gated_on_cuda_is_in_the_gpu_check():
    gated = _cuda_gated_tests()
    assert len(gated) >= 15
    for path, name in gated:
        assert any(path == p or path.startswith(p + '/') for p in gpu_check.CUDA_TEST_PATHS), path
        # pytest -k cuda selects it: by its name or its file's
        assert gpu_check.CUDA_TEST_KEYWORD in f'{path}::{name}'.lower(), f'{path}::{name}'


# -------------------------------------------------------------------------------------- mmcv's sources
def test_prune_cuda_sources_keeps_the_registrations_of_kept_kernels(tmp_path):
    cuda = tmp_path / 'pytorch' / 'cuda'
    cuda.mkdir(parents=True)
    (tmp_path / 'pytorch' / 'knn.cpp').write_text('void knn_forward_impl(int k) { DISPATCH(k); }\n'
                                                  'void knn_backward_impl(int k) { DISPATCH(k); }\n')
    (tmp_path / 'pytorch' / 'roi.cpp').write_text('void roi_impl(int x) { DISPATCH(x); }\n')
    (cuda / 'knn_cuda.cu').write_text('void KNNLauncher(int k) { /* kernel */ }\n')
    (cuda / 'roi_cuda.cu').write_text('void ROILauncher(int x) {}\nvoid roi_helper(int x) {}\n')
    (cuda / 'cudabind.cpp').write_text(textwrap.dedent('''\
        #include "pytorch_cpp_helper.hpp"
        #include "pytorch_device_registry.hpp"

        void ROILauncher(int x);
        void roi_helper(int x);

        void KNNLauncher(int k);

        void knn_forward_cuda(int k) {
          KNNLauncher(k);  // {braces} in a comment
        }

        void knn_forward_impl(int k);
        REGISTER_DEVICE_IMPL(knn_forward_impl, CUDA, knn_forward_cuda);

        void roi_cuda(int x) { ROILauncher(x); roi_helper(x); }

        void roi_impl(int x);
        REGISTER_DEVICE_IMPL(roi_impl, CUDA, roi_cuda)

        void knn_backward_impl(int k);
        REGISTER_DEVICE_IMPL(knn_backward_impl, CUDA, knn_forward_cuda);
    '''))
    removed = gpu_check.prune_cuda_sources(cuda, ['knn_cuda'])
    assert removed == ['roi_cuda'] and sorted(p.name for p in cuda.iterdir()) == ['cudabind.cpp', 'knn_cuda.cu']
    text = (cuda / 'cudabind.cpp').read_text()
    assert re.findall(r'REGISTER_DEVICE_IMPL\((\w+)', text) == ['knn_forward_impl', 'knn_backward_impl']
    assert 'ROILauncher' not in text and 'roi_helper' not in text and 'roi_cuda' not in text
    assert 'void knn_forward_cuda(int k) {' in text
    # the includes led the removed ROILauncher declaration: they stay
    assert '#include "pytorch_cpp_helper.hpp"\n#include "pytorch_device_registry.hpp"' in text
    with pytest.raises(ValueError, match='no such kernel sources'):
        gpu_check.prune_cuda_sources(cuda, ['nms_cuda'])


def test_point_kernel_sources_serve_every_dispatched_op():
    """Each op the plugin dispatches has its mmcv CUDA source in the pruned build."""
    sources = {
        'furthest_point_sample': 'furthest_point_sample_cuda', 'gather_points': 'gather_points_cuda',
        'grouping_operation': 'group_points_cuda', 'ball_query': 'ball_query_cuda', 'knn': 'knn_cuda',
        'three_nn': 'three_nn_cuda', 'three_interpolate': 'three_interpolate_cuda',
        'points_in_boxes_all': 'points_in_boxes_cuda', 'nms3d': 'iou3d_cuda',
        'sigmoid_focal_loss': 'focal_loss_cuda'}
    from projects.sam_mtp.ops import dispatch
    assert set(sources) | {'furthest_point_sample_with_dist', 'points_in_boxes_part', 'boxes_overlap_bev',
                           'boxes_iou3d', 'nms3d_normal'} == set(dispatch.DISPATCHERS)
    assert set(sources.values()) <= set(gpu_check.POINT_KERNEL_SOURCES)


def test_a_probe_that_crashes_says_how_it_ended(tmp_path):
    """The H200 run saw an import probe die with nothing on stderr (a crash inside a compiled extension): the
    error names the signal and the modules instead of an empty message."""
    assert gpu_check.describe_exit(1) == 'exit 1' and gpu_check.describe_exit(-11) == 'killed by SIGSEGV'
    check = make_check(tmp_path)
    crash = 'import os, signal, sys\ndef load_ext():\n    os.kill(os.getpid(), signal.SIGSEGV)\nload_ext()'
    with pytest.raises(RuntimeError, match=r'killed by SIGSEGV; modules mmcv\.ops\): ') as error:
        check.probe(crash, 'mmcv.ops', env=dict(os.environ))
    # faulthandler's Python stack says where it died
    assert 'Fatal Python error: Segmentation fault' in str(error.value) and 'in load_ext' in str(error.value)


# -------------------------------------------------------------------------------- report and the docs
def _sample_report():
    items = {n: dict(status='done', what=f'{n} at size', median_s=0.25, min_s=0.2, peak_memory_mib=2048.0,
                     mmcv=dict(mode='fallback', cuda=None, routing=dict(knn='pytorch')))
             for n in bench.ITEMS}
    items['threedetr_step'].update(tokens_per_scene=[455, 470, 461])
    items['stage1_step'].update(batch_per_gpu=16, epochs=120)
    items['stage2_step'].update(batch_per_gpu=16, epochs=120, median_s=0.5)
    items['dinov2_vit_b'].update(median_s=0.05, pooling_s=0.01)
    items['sam_vit_h_amg'].update(median_s=2.0, masks_kept=150)
    report = gpu_check.empty_report()
    report.update(updated='2027-01-02T03:04:05+00:00', mode='fallback',
                  mode_reason='the CUDA build is not used: built, but mmcv.ops does not import: killed by SIGSEGV',
                  commit=dict(commit='0123abc', dirty=False),
                  machine=dict(gpu='NVIDIA H200', gpu_memory_gib=139.8, capability='9.0', cpu_count=16,
                               hostname='gpu-1'),
                  software=dict(python='3.12.3', torch='2.11.0+cu130', torch_cuda='13.0', mmcv='2.1.0',
                                mmcv_cuda='13.0', numpy='2.3.5'))
    report['phases'] = dict(
        test=dict(status='done', summary=dict(passed=30, skipped=1),
                  tests=[dict(nodeid='t::a', outcome='skipped', duration_s=0, reason='this GPU has no bfloat16')]),
        bench=dict(status='done', items=items, projections=gpu_report.compute_projections(items)))
    return report


def test_projections_follow_their_definitions():
    projections = _sample_report()['phases']['bench']['projections']
    assert projections['label_gpu_hours']['value'] == pytest.approx(78_000 * (2.0 + 0.05 + 0.01) / 3600)
    steps = 120 * math.ceil(78_000 / 64)
    assert projections['stage1_wall_hours']['value'] == pytest.approx(steps * 0.25 / 3600)
    assert projections['stage2_wall_hours']['value'] == pytest.approx(steps * 0.5 / 3600)


def test_docs_section_is_generated_from_the_recorded_report(tmp_path):
    docs_text = (ROOT / 'docs' / 'benchmarks.md').read_text()
    recorded = ROOT / 'docs' / 'gpu_report.json'
    report = json.loads(recorded.read_text()) if recorded.exists() else None
    assert gpu_report.docs_section(docs_text) == gpu_report.render_docs_section(report), \
        'docs/benchmarks.md was edited by hand: regenerate it with dev/gpu_check/gpu_report.py docs'
    # Recording a run stamps the section with its date, machine and commit, and fills the tables.
    docs, run, kept = tmp_path / 'benchmarks.md', tmp_path / 'run.json', tmp_path / 'gpu_report.json'
    docs.write_text(docs_text)
    run.write_text(json.dumps(_sample_report()))
    new = gpu_report.update_docs(docs, run, kept)
    section = gpu_report.docs_section(new)
    assert new.replace(section, '') == docs_text.replace(gpu_report.docs_section(docs_text), '')  # rest intact
    assert '2027-01-02T03:04:05+00:00' in section and '`0123abc`' in section and 'NVIDIA H200' in section
    assert '| stage1_step | stage1_step at size | done | fallback | 250.0 ms | 200.0 ms | 2,048 MiB |' in section
    assert '- mode: fallback mode: the PyTorch point ops on CUDA tensors (the CUDA build is not used: built, but ' \
        'mmcv.ops does not import: killed by SIGSEGV)' in section
    assert '- threedetr_step: SAM tokens per scene 455-470 (mean 462)' in section
    assert 'this GPU has no bfloat16' in section and json.loads(kept.read_text())['commit']['commit'] == '0123abc'
    assert 'Not measured yet' in gpu_report.render_docs_section(None)


# --------------------------------------------------------------------------------- a benchmark item
def test_benchmark_items_at_toy_size_on_cpu(tmp_path):
    results = bench.main(['point_ops', 'stage1_step', '--tiny', '--device', 'cpu', '--steps', '1', '--warmup',
                          '0', '--out-dir', str(tmp_path)])
    for name in ('point_ops', 'stage1_step'):
        assert json.loads((tmp_path / f'{name}.json').read_text()) == json.loads(json.dumps(results[name]))
        assert results[name]['median_s'] > 0 and results[name]['tiny'] and results[name]['device'] == 'cpu'
    assert set(results['point_ops']['parts']) == {f'{op}.pytorch' for op in (
        'furthest_point_sample', 'ball_query', 'knn', 'three_nn')}
    stage1 = results['stage1_step']
    assert stage1['epochs'] > 0 and all(math.isfinite(v) for v in stage1['losses'].values())
    from projects.sam_mtp.ops import dispatch
    for name in ('point_ops', 'stage1_step'):  # which implementation timed the point ops
        assert results[name]['mmcv']['routing'] == dispatch.kernel_routing('cpu')


def test_mmcv_stamp_names_the_mode_from_the_routing(monkeypatch):
    from projects.sam_mtp.ops import dispatch
    for routing, mode in (({'knn': 'mmcv', 'ball_query': 'mmcv'}, 'kernels'),
                          ({'knn': 'pytorch', 'ball_query': 'pytorch'}, 'fallback'),
                          ({'knn': 'mmcv', 'ball_query': 'pytorch'}, 'mixed')):
        monkeypatch.setattr(dispatch, 'kernel_routing', lambda device_type, r=routing: dict(r))
        monkeypatch.setattr(dispatch, 'mmcv_cuda_build', lambda: '13.0')
        assert bench.mmcv_stamp('cuda') == dict(mode=mode, cuda='13.0', routing=routing)


def _tiny_sam_run(tmp_path, monkeypatch, device, steps=2):
    """bench.py's SAM item at toy size (a SAM of the real segment_anything classes, 32-d, one block) on
    ``device``, watching the model it builds and what its image encoder is fed."""
    from projects.sam_mtp.labels.sources import mask_sources
    built, encoder_inputs = [], []
    real_build_sam = mask_sources.build_sam

    def build_and_watch(*args, **kwargs):
        model = real_build_sam(*args, **kwargs)
        model.image_encoder.register_forward_pre_hook(lambda module, inputs: encoder_inputs.append(inputs[0].device))
        built.append(model)
        return model

    monkeypatch.setattr(mask_sources, 'build_sam', build_and_watch)
    results = bench.main(['sam_vit_h_amg', '--tiny', '--device', device, '--steps', str(steps), '--warmup', '0',
                          '--out-dir', str(tmp_path)])
    (model, ) = built
    return results['sam_vit_h_amg'], model, encoder_inputs


def test_sam_item_runs_on_the_timers_device_and_keeps_the_encoder_before_the_mask_loop(tmp_path, monkeypatch):
    """segment-anything makes pixel_mean / pixel_std with torch.Tensor(list), which ignores `with torch.device`,
    and SamPredictor puts the image on pixel_mean's device: on a GPU the item fed CPU images to GPU weights. On the
    meta device (not the default one) every parameter and buffer of the built SAM, and every image its encoder
    gets, must be there. The encoder's time is kept as soon as it is measured, before the mask loop, which cannot
    finish on meta (its masks go to numpy) and so fails the item."""
    result, model, encoder_inputs = _tiny_sam_run(tmp_path, monkeypatch, 'meta')
    assert {t.device.type for t in [*model.parameters(), *model.buffers()]} == {'meta'}
    assert len(list(model.buffers())) >= 2  # pixel_mean and pixel_std among them
    assert encoder_inputs and {d.type for d in encoder_inputs} == {'meta'}
    assert result['status'] == 'failed'
    failed = json.loads((tmp_path / 'sam_vit_h_amg.error.json').read_text())
    encoder = failed['parts']['image_encoder']
    assert encoder['steps'] == 2 and encoder['what'].startswith('image encoder on the whole frame (1 of the 5 crops')
    assert len(encoder_inputs) > 2  # the two timed runs came first, then the mask loop began (and failed)
    assert json.loads((tmp_path / 'sam_vit_h_amg.partial.json').read_text())['parts'] == failed['parts']


def test_sam_item_at_toy_size_on_cpu(tmp_path, monkeypatch):
    result, model, encoder_inputs = _tiny_sam_run(tmp_path, monkeypatch, 'cpu', steps=1)
    assert result['median_s'] > 0 and result['masks_kept'] > 0
    assert result['parts']['image_encoder']['median_s'] > 0 and result['mmcv']['mode'] in ('kernels', 'fallback',
                                                                                              'mixed')
    # one timed encoder run, then the 5 crops of each of the frame loop's frames (1 crop layer: 1 + 4)
    assert len(encoder_inputs) == 1 + 5 * result['steps']


def _config_tokens(segment, cfg) -> int:
    """Tokens the SAM tokenizer makes of a scene, from its rules: one per segment of >= min_points points, one
    fallback token per fallback_size points outside those (at most max_fallback_tokens), max_tokens in all."""
    import torch
    sizes = torch.bincount(segment[segment >= 0])
    regions = int((sizes >= cfg.min_points).sum())
    unassigned = int((segment < 0).sum()) + int(sizes[sizes < cfg.min_points].sum())
    fallback = min(math.ceil(unassigned / cfg.fallback_size), cfg.max_fallback_tokens)
    return min(regions + fallback, cfg.max_tokens)


def test_detection_bench_scenes_have_hundreds_of_sam_tokens():
    """3DETR's (40k points) and GroupFree3D's (50k) bench scenes give the configs' SAM tokenizer hundreds of
    tokens each, as real ScanNet rooms do, not the ~140 of one segment per box and floor cell."""
    import torch
    from mmengine.config import Config

    from projects.sam_mtp.models.tokenizers import SAMGuidedTokenizer
    from projects.sam_mtp.testing import detection_batch
    cfg = Config.fromfile(str(ROOT / 'configs/sam_mtp/_base_/models/sam-mtp-point-backbone.py')).det_sam_tokenizer
    tokenizer = SAMGuidedTokenizer(**{k: v for k, v in cfg.items() if k != 'type'}).eval()
    for points in (40_000, 50_000):
        data = detection_batch(1, points, 12, torch.Generator().manual_seed(0), 18, bench.DETECTION_SCENE_SEGMENTS)
        for scene in data['inputs']['points']:
            segment = scene[:, 3].long()
            expected = _config_tokens(segment, cfg)
            assert 400 <= expected <= 500, expected  # docs/gpu_check.md and bench.py state 460-480
            assert tokenizer(scene[None, :, :3], segment[None] + 1).num_tokens.tolist() == [expected]
