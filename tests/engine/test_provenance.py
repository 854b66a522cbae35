"""engine/provenance.py: the commit and machine fields that reports and benchmark JSON carry."""
import os
import subprocess

from projects.sam_mtp.engine.provenance import cpu_model, git_commit, memory_gib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_git_commit_is_heads_hash_and_none_outside_a_checkout(tmp_path):
    head = subprocess.run(['git', '-C', ROOT, 'rev-parse', 'HEAD'], capture_output=True, text=True,
                          check=True).stdout.strip()
    sha, dirty = git_commit(where=ROOT)
    assert sha == head and isinstance(dirty, bool)
    short, _ = git_commit(short=True, where=ROOT)
    assert head.startswith(short) and 7 <= len(short) < len(head)
    assert git_commit(where=str(tmp_path)) == (None, None)


def test_git_commit_sees_a_modified_tracked_file(tmp_path):
    repo = str(tmp_path)
    env = dict(os.environ, GIT_AUTHOR_NAME='t', GIT_AUTHOR_EMAIL='t@t', GIT_COMMITTER_NAME='t',
               GIT_COMMITTER_EMAIL='t@t')
    subprocess.run(['git', 'init', '-q', repo], check=True)
    (tmp_path / 'a.txt').write_text('1')
    subprocess.run(['git', '-C', repo, 'add', 'a.txt'], check=True)
    subprocess.run(['git', '-C', repo, 'commit', '-qm', 'a'], check=True, env=env)
    (tmp_path / 'untracked.txt').write_text('not counted')
    assert git_commit(where=repo)[1] is False
    (tmp_path / 'a.txt').write_text('2')
    assert git_commit(where=repo)[1] is True


def test_machine_fields():
    assert isinstance(cpu_model(), str) and cpu_model()
    gib = memory_gib()
    assert gib is None or gib > 0
