"""tools/demo.py's step runner: logs every step, skips finished steps on a rerun, stops with the log's tail."""
import os.path as osp
import sys

import pytest

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools'))
import demo  # noqa: E402


def _demo(tmp_path, *extra):
    return demo.Demo(demo.parse_args(['--work-dir', str(tmp_path / 'wd'), *extra]))


def test_step_runs_once_and_is_skipped_when_done(tmp_path, capsys):
    counter = tmp_path / 'count.txt'
    cmd = [sys.executable, '-c', f'open({str(counter)!r}, "a").write("x"); print("mmengine - INFO - wrote 1")']
    _demo(tmp_path).run('step', cmd, 'a step')
    _demo(tmp_path).run('step', cmd, 'a step')
    assert counter.read_text() == 'x'
    out = capsys.readouterr().out
    assert 'wrote 1' in out and 'already done' in out
    assert 'wrote 1' in (tmp_path / 'wd' / 'logs' / 'step.log').read_text()
    _demo(tmp_path, '--fresh').run('step', cmd, 'a step')
    assert counter.read_text() == 'xx'


def test_failing_step_exits_with_the_log_tail_and_leaves_no_marker(tmp_path):
    cmd = [sys.executable, '-c', 'import sys; print("last words"); sys.exit(3)']
    with pytest.raises(SystemExit) as info:
        _demo(tmp_path).run('bad', cmd, 'a failing step')
    assert 'exit code 3' in str(info.value) and 'last words' in str(info.value)
    assert not osp.exists(tmp_path / 'wd' / 'done' / 'bad')
