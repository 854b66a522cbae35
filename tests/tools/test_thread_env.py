"""The tools' thread settings (projects/sam_mtp/engine/cpu_threads.py): tools/train.py, tools/test.py and
tools/demo.py put OMP_WAIT_POLICY=PASSIVE into the environment before torch is imported (libgomp reads it once,
when torch loads), keep a value the user set, and the settings module loads without torch. The benchmark's
ratio summary is checked on hand-made iteration times."""
import json
import os
import os.path as osp
import runpy
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODULE = osp.join(ROOT, 'projects', 'sam_mtp', 'engine', 'cpu_threads.py')
ENTRY_POINTS = ('train.py', 'test.py', 'demo.py')

# Runs a tool as a script with --help; a meta-path finder records OMP_WAIT_POLICY when torch is first imported and
# stops the tool there (nothing heavy is loaded). Prints the value seen at torch's import and at the end.
PROBE = r'''
import json, os, runpy, sys
seen = {}
class Stop(BaseException):
    pass
class AtTorchImport:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'torch' and 'at_torch_import' not in seen:
            seen['at_torch_import'] = os.environ.get('OMP_WAIT_POLICY', '<unset>')
            raise Stop
        return None
sys.meta_path.insert(0, AtTorchImport())
sys.argv = [sys.argv[1], '--help']
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
except (Stop, SystemExit):
    pass
seen['at_end'] = os.environ.get('OMP_WAIT_POLICY', '<unset>')
print(json.dumps(seen))
'''


def _probe(tool, **env_values):
    env = {k: v for k, v in os.environ.items() if k != 'OMP_WAIT_POLICY'}
    env.update(PYTHONPATH=ROOT, **env_values)
    out = subprocess.run([sys.executable, '-c', PROBE, osp.join(ROOT, 'tools', tool)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('tool', ENTRY_POINTS)
def test_entry_point_sets_passive_waiting_before_torch_is_imported(tool):
    seen = _probe(tool)
    # demo.py imports torch only inside its steps (its --help never does); what it sets, its steps inherit.
    assert seen.get('at_torch_import', 'PASSIVE') == 'PASSIVE' and seen['at_end'] == 'PASSIVE'
    if tool != 'demo.py':
        assert 'at_torch_import' in seen  # train/test import torch at their top: the setting came first


@pytest.mark.parametrize('tool', ENTRY_POINTS)
@pytest.mark.parametrize('user_value', ['ACTIVE', ''])
def test_entry_point_keeps_the_users_value(tool, user_value):
    seen = _probe(tool, OMP_WAIT_POLICY=user_value)
    assert seen['at_end'] == user_value and seen.get('at_torch_import', user_value) == user_value


def test_defaults_fill_only_missing_keys():
    set_defaults = runpy.run_path(MODULE)['set_thread_env_defaults']
    environ = {'PATH': '/bin'}
    assert set_defaults(environ) == {'OMP_WAIT_POLICY': 'PASSIVE'}
    assert environ == {'PATH': '/bin', 'OMP_WAIT_POLICY': 'PASSIVE'}
    environ = {'OMP_WAIT_POLICY': 'active'}
    assert set_defaults(environ) == {} and environ == {'OMP_WAIT_POLICY': 'active'}


def test_settings_module_loads_without_torch():
    code = f'import runpy, sys; runpy.run_path({MODULE!r}); print("torch" in sys.modules, "numpy" in sys.modules)'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ['False', 'False'], out.stderr


def test_benchmark_ratio_per_repeat_is_median_loaded_over_median_quiet():
    sys.path.insert(0, osp.join(ROOT, 'benchmarks'))
    import bench_shared_cpu
    schedule = bench_shared_cpu.phase_schedule(warmup=1, iters=3, repeats=2)
    assert schedule == ['warmup'] + (['quiet'] * 3 + ['loaded'] * 3) * 2
    seconds = [None, 1.0, 3.0, 2.0, 9.0, 5.0, 4.0, 2.0, 2.5, 7.0, 1.0, 1.0, 1.0]
    cpu = [None, 0, 0, 0, 0.5, 0.1, 0.2, 0, 0, 0, 0.3, 0.4, 0.3]
    result = dict(iterations=[dict(phase=p, seconds=t, cpu_seconds=c) for p, t, c in zip(schedule, seconds, cpu)])
    # repeat 1: quiet median 2.0, loaded median 5.0 (CPU 0.2); repeat 2: quiet 2.5, loaded 1.0 (CPU 0.3)
    assert bench_shared_cpu.summarize(result, 2) == [dict(quiet_s=2.0, loaded_s=5.0, ratio=2.5, loaded_cpu_s=0.2),
                                                      dict(quiet_s=2.5, loaded_s=1.0, ratio=0.4, loaded_cpu_s=0.3)]
