"""The demo's step runner (projects/sam_mtp/demo/runner.py): logs every step, skips finished steps on a rerun,
stops with the log's tail."""
import os.path as osp
import sys

import pytest

from projects.sam_mtp.demo.runner import Demo
from projects.sam_mtp.demo.settings import DemoSettings, DemoSettingsError


def _demo(tmp_path, fresh=False):
    return Demo(DemoSettings(work_dir=str(tmp_path / 'wd'), fresh=fresh))


def test_step_runs_once_and_is_skipped_when_done(tmp_path, capsys):
    counter = tmp_path / 'count.txt'
    cmd = [sys.executable, '-c', f'open({str(counter)!r}, "a").write("x"); print("mmengine - INFO - wrote 1")']
    _demo(tmp_path).run('step', cmd, 'a step')
    _demo(tmp_path).run('step', cmd, 'a step')
    assert counter.read_text() == 'x'
    out = capsys.readouterr().out
    assert 'wrote 1' in out and 'already done' in out
    assert 'wrote 1' in (tmp_path / 'wd' / 'logs' / 'step.log').read_text()
    _demo(tmp_path, fresh=True).run('step', cmd, 'a step')
    assert counter.read_text() == 'xx'


def test_failing_step_exits_with_the_log_tail_and_leaves_no_marker(tmp_path):
    cmd = [sys.executable, '-c', 'import sys; print("last words"); sys.exit(3)']
    with pytest.raises(SystemExit) as info:
        _demo(tmp_path).run('bad', cmd, 'a failing step')
    assert 'exit code 3' in str(info.value) and 'last words' in str(info.value)
    assert not osp.exists(tmp_path / 'wd' / 'done' / 'bad')


@pytest.mark.parametrize('changes, message', [
    (dict(seeds=[0, 0]), '--seeds must be distinct'),
    (dict(label_fractions=[0.5, 1.0]), r'--label-fractions must lie in \(0, 1\)'),
    (dict(pretrain_epochs=1), '--pretrain-epochs must be >= 2'),
    (dict(tasks=['seg', 'votenet']), "unknown fine-tuning task 'votenet'"),
])
def test_settings_out_of_range_are_refused_with_the_setting_named(tmp_path, changes, message):
    with pytest.raises(DemoSettingsError, match=message):
        Demo(DemoSettings(work_dir=str(tmp_path / 'wd'), **changes))
    assert not osp.exists(tmp_path / 'wd')


def test_settings_default_folders_follow_the_targets():
    assert (DemoSettings().work_dir, DemoSettings().data_root) == ('work_dirs/demo', 'data/demo/scannet')
    stand_in = DemoSettings(targets='random-vit')
    assert (stand_in.work_dir, stand_in.data_root) == ('work_dirs/demo_random_vit', 'data/demo_random_vit/scannet')


def test_command_line_maps_to_settings_and_refuses_bad_ones_in_one_line():
    """tools/demo.py is only the command line of DemoSettings: a bad value ends it before any step."""
    import subprocess
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    out = subprocess.run([sys.executable, osp.join(root, 'tools', 'demo.py'), '--seeds', '3', '3'],
                         capture_output=True, text=True, timeout=120, cwd=str(root))
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].endswith(
        'error: --seeds must be distinct, got [3, 3]')
