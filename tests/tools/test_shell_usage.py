"""The launcher scripts answer --help/-h and missing arguments with their usage, run through bash as a user does,
and never start anything: PYTHON and srun are replaced by a command that records being called."""
import os
import os.path as osp
import subprocess

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# script -> (its required arguments, the usage line it prints)
LAUNCHERS = {
    'dist_train.sh': (['cfg.py', '2'], 'usage: tools/dist_train.sh CONFIG NUM_PROCS [train.py args...]'),
    'dist_test.sh': (['cfg.py', 'ckpt.pth', '2'],
                     'usage: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py args...]'),
    'slurm_train.sh': (['part', 'job', 'cfg.py', 'work'],
                       'usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]'),
    'slurm_test.sh': (['part', 'job', 'cfg.py', 'ckpt.pth'],
                      'usage: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]'),
}


@pytest.fixture
def tripwire(tmp_path):
    """An environment whose python and srun write a marker file instead of running anything."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    marker = tmp_path / 'started'
    for name in ('python', 'srun'):
        exe = bin_dir / name
        exe.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\n')
        exe.chmod(0o755)
    env = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}', PYTHON=str(bin_dir / 'python'),
               SAM_MTP_VENV=str(tmp_path / 'venv'), SAM_MTP_CACHE=str(tmp_path / 'cache'))
    return env, marker


def _bash(script, args, env, cwd):
    return subprocess.run(['bash', osp.join(ROOT, 'tools', script), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize('script', sorted(LAUNCHERS))
@pytest.mark.parametrize('flag', ['--help', '-h'])
def test_launcher_help_prints_usage(script, flag, tripwire, tmp_path):
    env, marker = tripwire
    required, usage = LAUNCHERS[script]
    # --help as the first argument, and in place of a later required argument.
    for args in ([flag], required[:1] + [flag]):
        proc = _bash(script, args, env, tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[0] == usage
        assert proc.stderr == ''
    assert not marker.exists()


@pytest.mark.parametrize('script', sorted(LAUNCHERS))
def test_launcher_missing_arguments_print_usage_and_one_error(script, tripwire, tmp_path):
    env, marker = tripwire
    required, usage = LAUNCHERS[script]
    for count in range(len(required)):
        proc = _bash(script, required[:count], env, tmp_path)
        assert proc.returncode == 2
        lines = proc.stderr.splitlines()
        assert lines[0] == usage
        assert lines[-1].startswith(f'error: tools/{script} needs ') and f'got {count} argument(s)' in lines[-1]
        assert sum(line.startswith('error:') for line in lines) == 1
        assert 'unbound variable' not in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh'])
def test_dist_launchers_refuse_a_bad_process_count(script, tripwire, tmp_path):
    env, marker = tripwire
    required, _ = LAUNCHERS[script]
    for bad in ('0', 'two', '-1'):
        proc = _bash(script, required[:-1] + [bad], env, tmp_path)
        assert proc.returncode == 2
        assert proc.stderr == f"error: tools/{script}: NUM_PROCS must be a positive integer, got '{bad}'\n"
    assert not marker.exists()
    # The arguments a user gives reach the launcher unchanged (the tripwire stands in for torchrun).
    proc = _bash(script, required + ['--work-dir', 'w'], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    started = marker.read_text()
    assert '--nproc_per_node=2' in started and started.rstrip().endswith('--launcher pytorch --work-dir w')


@pytest.mark.parametrize('script', ['slurm_train.sh', 'slurm_test.sh'])
def test_slurm_launchers_pass_the_job_to_srun(script, tripwire, tmp_path):
    env, marker = tripwire
    required, _ = LAUNCHERS[script]
    proc = _bash(script, required + ['--cfg-options', 'a=1'], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    started = marker.read_text().splitlines()[0]
    assert started.split()[0].endswith('/srun') and '-p part --job-name=job' in started
    assert started.endswith('--launcher=slurm --cfg-options a=1')


@pytest.mark.parametrize('flag', ['--help', '-h'])
def test_setup_env_help_prints_usage_and_sets_up_nothing(flag, tripwire, tmp_path):
    env, marker = tripwire
    proc = _bash('setup_env.sh', [flag], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == 'usage: bash tools/setup_env.sh [--help]'
    assert any(line.split()[:1] == ['SAM_MTP_VENV'] for line in lines)  # the documented environment variables
    assert '[setup]' not in proc.stdout + proc.stderr
    # Nothing was created and no interpreter was started.
    assert not (tmp_path / 'venv').exists() and not (tmp_path / 'cache').exists()
    assert not marker.exists()


def test_setup_env_refuses_unknown_arguments(tripwire, tmp_path):
    env, marker = tripwire
    proc = _bash('setup_env.sh', ['--force'], env, tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == ("error: tools/setup_env.sh takes no arguments (got '--force'); see "
                           "tools/setup_env.sh --help\n")
    assert not (tmp_path / 'cache').exists() and not marker.exists()
