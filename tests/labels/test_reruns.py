"""Reruns into an existing output folder, for tools/generate_sam_labels.py and tools/make_scene_segments.py: a run
with other settings is refused in one line before any model is built and writes nothing, the same settings skip
finished files, --overwrite redoes only what other settings made (also after an interruption), a read-only output
folder is refused before any model, written files get the umask's permissions, and bad input is one `error:` line."""
import contextlib
import glob
import json
import os
import shutil
import stat
import tempfile
from functools import partialmethod

import numpy as np
import pytest
from helpers.tools import load_tool

from projects.sam_mtp.labels.formats.frame_labels import (
    SETTINGS_ARRAY,
    load_frame_labels,
    load_label_info,
    save_frame_labels,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
generate_sam_labels = load_tool('generate_sam_labels')
make_scene_segments = load_tool('make_scene_segments')

LABELS_DEMO = os.path.join(REPO, 'configs', 'sam_mtp', 'labels', 'demo_stand_in.py')
SMALL = ['label_cfg.num_points=128', 'label_cfg.mask_size=36,48', 'label_cfg.num_groups=3',
         'feature_source.short_side=28', 'feature_source.arch.embed_dims=16', 'feature_source.arch.num_layers=1']
SUNRGBD = os.path.join(REPO, 'configs', 'sam_mtp', 'segments', 'sunrgbd_sam.py')


def _label_args(synthetic_root, out, *extra, options=()):
    return [LABELS_DEMO, '--frames-root', os.path.join(synthetic_root, 'posed_images'), '--out-dir', str(out),
            '--split-file', os.path.join(synthetic_root, 'meta_data', 'scannetv2_train.txt'),
            '--axis-align-root', os.path.join(synthetic_root, 'scans'), '--no-progress', *extra,
            '--cfg-options', *SMALL, *options]


def _snapshot(root):
    """Every file under ``root`` with its bytes and modification time."""
    files = {}
    for path in sorted(glob.glob(os.path.join(str(root), '**', '*'), recursive=True) +
                       glob.glob(os.path.join(str(root), '**', '.*'), recursive=True)):
        if os.path.isfile(path):
            with open(path, 'rb') as f:
                files[os.path.relpath(path, str(root))] = (f.read(), os.stat(path).st_mtime_ns)
    return files


def _frames(out):
    return sorted(glob.glob(os.path.join(str(out), 'scene*', '*.npz')))


def _shard_report(out):
    with open(os.path.join(str(out), '_work', 'train', 'shards', 'shard-0-of-1.json')) as f:
        return json.load(f)


def _one_error_line(capfd) -> str:
    """The tool printed exactly one line, ``error: ...`` on stderr, and nothing on stdout."""
    out, err = capfd.readouterr()
    assert out == '' and err.count('\n') == 1 and err.startswith('error: '), (out, err)
    return err.strip()


@pytest.fixture
def label_builds(monkeypatch):
    """Every source the label tool builds (it must build none before refusing)."""
    import projects.sam_mtp.labels as labels
    built, real = [], labels.build_label_source

    def counted(cfg):
        built.append(cfg['type'])
        return real(cfg)

    monkeypatch.setattr(labels, 'build_label_source', counted)
    return built


@pytest.fixture(scope='module')
def labelled(synthetic_root, tmp_path_factory):
    """A finished label root of the 8 synthetic frames (copied by each test that changes it)."""
    out = tmp_path_factory.mktemp('labelled') / 'labels'
    assert generate_sam_labels.main(_label_args(synthetic_root, out)) == 0
    return out


@pytest.fixture
def labels_copy(labelled, tmp_path):
    out = tmp_path / 'labels'
    shutil.copytree(labelled, out)  # copy2: modification times kept
    return out


@pytest.mark.parametrize('option, named', [
    ('label_cfg.num_points=64', 'label_cfg.num_points 128 -> 64'),
    ('feature_source.arch.embed_dims=32', 'feature_source.arch.embed_dims 16 -> 32'),
    ('mask_source.ignore_ids=[0,1]', 'mask_source.ignore_ids [0] -> [0, 1]'),
    ('label_cfg.num_groups=4', 'label_cfg.num_groups 3 -> 4'),
])
def test_label_rerun_with_other_settings_is_refused_in_one_line(synthetic_root, labels_copy, label_builds, capfd,
                                                                option, named):
    before = _snapshot(labels_copy)
    capfd.readouterr()
    assert generate_sam_labels.main(_label_args(synthetic_root, labels_copy, options=[option])) == 1
    line = _one_error_line(capfd)
    assert line == (f'error: {labels_copy} holds labels made with other settings ({named}); rerun with --overwrite '
                    'to redo them with these settings, or choose another --out-dir')
    assert label_builds == [] and _snapshot(labels_copy) == before


def test_label_rerun_without_axis_alignment_is_refused(synthetic_root, labels_copy, label_builds, capfd):
    args = _label_args(synthetic_root, labels_copy)
    del args[args.index('--axis-align-root'):args.index('--axis-align-root') + 2]
    assert generate_sam_labels.main(args) == 1
    assert '(axis_aligned true -> false)' in _one_error_line(capfd) and label_builds == []


def test_label_rerun_with_the_same_settings_skips_finished_frames(synthetic_root, labels_copy):
    recorded = json.loads((labels_copy / 'label_settings.json').read_text())
    assert recorded['settings']['label_cfg']['num_points'] == 128
    assert recorded['settings']['mask_source']['type'] == 'InstanceImageMaskSource'
    frames = _frames(labels_copy)
    assert len(frames) == 8
    for path in frames:  # every frame carries the fingerprint of the recorded frame settings
        assert str(load_frame_labels(path)[SETTINGS_ARRAY]) == recorded['frames_fingerprint']
    meta = load_label_info(str(labels_copy / 'train_labels.pkl'))['metainfo']
    assert meta['settings_fingerprint'] == recorded['fingerprint'] != recorded['frames_fingerprint']
    stamps = {p: os.stat(p).st_mtime_ns for p in frames}
    assert generate_sam_labels.main(_label_args(synthetic_root, labels_copy, '--no-auto-merge')) == 0
    report = _shard_report(labels_copy)
    assert report['already_done'] == 8 and report['written'] == 0
    assert {p: os.stat(p).st_mtime_ns for p in frames} == stamps
    # written with the permissions of an ordinary open under this umask (mkstemp alone gives 0600)
    mask = os.umask(0o022)
    os.umask(mask)
    for path in frames + [str(labels_copy / 'label_settings.json'), str(labels_copy / 'train_labels.pkl')]:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask, path


def test_label_overwrite_redoes_frames_of_other_settings_only(synthetic_root, labels_copy, label_builds):
    assert generate_sam_labels.main(_label_args(synthetic_root, labels_copy, '--overwrite',
                                                options=['label_cfg.num_points=64'])) == 0
    assert _shard_report(labels_copy)['written'] == 8
    assert all(load_frame_labels(p)['points'].shape == (64, 3) for p in _frames(labels_copy))
    info = load_label_info(str(labels_copy / 'train_labels.pkl'))
    assert info['metainfo']['num_points'] == 64 and len(info['data_list']) == 8
    assert json.loads((labels_copy / 'label_settings.json').read_text())['settings']['label_cfg']['num_points'] == 64
    # Only K changes: the frames are kept (no model runs on them), the merge regroups them.
    assert generate_sam_labels.main(_label_args(synthetic_root, labels_copy, '--overwrite',
                                                options=['label_cfg.num_points=64', 'label_cfg.num_groups=2'])) == 0
    report = _shard_report(labels_copy)
    assert report['written'] == 0 and report['already_done'] == 8
    info = load_label_info(str(labels_copy / 'train_labels.pkl'))
    assert info['metainfo']['num_groups'] == 2
    groups = np.concatenate([load_frame_labels(p)['region_group'] for p in _frames(labels_copy)])
    assert set(np.unique(groups).tolist()) == {0, 1}


def test_label_overwrite_interrupted_resumes_without_mixing_settings(synthetic_root, labels_copy, monkeypatch, capfd):
    from projects.sam_mtp.labels.frame_labels.generation import LabelGenerator
    new = ['label_cfg.num_points=64']
    with monkeypatch.context() as patch:  # killed after 3 of the 8 frames
        patch.setattr(LabelGenerator, 'run', partialmethod(LabelGenerator.run, fail_after=3))
        assert generate_sam_labels.main(_label_args(synthetic_root, labels_copy, '--overwrite', options=new)) == 1
    redone = [p for p in _frames(labels_copy) if load_frame_labels(p)['points'].shape == (64, 3)]
    assert 3 <= len(redone) < 8 and not (labels_copy / 'train_labels.pkl').exists()
    # The merge refuses the mix of old and new frames ...
    capfd.readouterr()
    assert generate_sam_labels.main(_label_args(synthetic_root, labels_copy, '--merge', options=new)) == 1
    assert 'were made with other settings' in _one_error_line(capfd)
    # ... and a plain rerun with the new settings keeps the redone frames and redoes the old ones.
    stamps = {p: os.stat(p).st_mtime_ns for p in redone}
    assert generate_sam_labels.main(_label_args(synthetic_root, labels_copy, '--no-auto-merge', options=new)) == 0
    report = _shard_report(labels_copy)
    assert report['already_done'] == len(redone) and report['written'] == 8 - len(redone)
    assert {p: os.stat(p).st_mtime_ns for p in redone} == stamps
    assert all(load_frame_labels(p)['points'].shape == (64, 3) for p in _frames(labels_copy))
    assert generate_sam_labels.main(_label_args(synthetic_root, labels_copy, '--merge', options=new)) == 0
    assert load_label_info(str(labels_copy / 'train_labels.pkl'))['metainfo']['num_points'] == 64


def test_labels_written_before_settings_were_recorded_are_refused(synthetic_root, labels_copy, label_builds, capfd):
    os.remove(labels_copy / 'label_settings.json')
    for path in _frames(labels_copy):  # frames as the code before the fingerprint wrote them
        arrays = load_frame_labels(path)
        del arrays[SETTINGS_ARRAY]
        save_frame_labels(path, arrays)
    capfd.readouterr()
    assert generate_sam_labels.main(_label_args(synthetic_root, labels_copy)) == 1
    assert _one_error_line(capfd) == (
        f'error: {labels_copy} holds labels of unknown settings (written before settings were recorded); rerun '
        'with --overwrite to redo them with these settings, or choose another --out-dir')
    assert label_builds == [] and not (labels_copy / 'label_settings.json').exists()
    assert generate_sam_labels.main(_label_args(synthetic_root, labels_copy, '--overwrite')) == 0
    assert _shard_report(labels_copy)['written'] == 8
    assert all(SETTINGS_ARRAY in load_frame_labels(p) for p in _frames(labels_copy))


# ---------------------------------------------------------------------------------------------------- segments
@pytest.fixture(scope='module')
def sun_segments(tmp_path_factory):
    """Synthetic SUN RGB-D (3 samples) with a stand-in SAM config and a finished scene_segments folder."""
    from projects.sam_mtp.datasets.synthetic import write_synthetic_sunrgbd
    base = tmp_path_factory.mktemp('sun_reruns')
    root = str(base / 'sunrgbd')
    write_synthetic_sunrgbd(root, dict(train=2, val=1), seed=0, num_points=1500, image_size=(96, 72))
    config = str(base / 'stand_in_sunrgbd.py')
    with open(config, 'w') as f:
        f.write(f"_base_ = [{SUNRGBD!r}]\n"
                "mask_source = dict(_delete_=True, type='InstanceImageMaskSource', folder='instance')\n")
    infos = [os.path.join(root, f'sunrgbd_infos_{s}.pkl') for s in ('train', 'val')]
    args = [config, '--data-root', root, '--info', *infos, '--no-progress']
    assert make_scene_segments.main(args + ['--segments-dir', str(base / 'segments')]) == 0
    return args, base / 'segments'


@pytest.fixture
def segments_copy(sun_segments, tmp_path):
    args, segments = sun_segments
    out = tmp_path / 'segments'
    shutil.copytree(segments, out)
    return args + ['--segments-dir', str(out)], out


@pytest.fixture
def mask_builds(monkeypatch):
    """Every mask source the segments tool builds (it must build none before refusing)."""
    import projects.sam_mtp.labels.segments.segmenters as segment_jobs
    built, real = [], segment_jobs.build_mask_source

    def counted(cfg):
        built.append(cfg)
        return real(cfg)

    monkeypatch.setattr(segment_jobs, 'build_mask_source', counted)
    return built


def _segment_report(out):
    with open(os.path.join(str(out), '_work', 'shard-0-of-1.json')) as f:
        return json.load(f)


def _sidecar(out, name):
    with open(os.path.join(str(out), f'{name}.json')) as f:
        return json.load(f)


@pytest.mark.parametrize('option, named', [
    ('segment_cfg.pixel_origin=0', 'segment_cfg.pixel_origin 1 -> 0'),
    ('segment_cfg.min_segment_points=5', 'segment_cfg.min_segment_points 1 -> 5'),
    ('mask_source.ignore_ids=[0,1]', 'mask_source.ignore_ids [0] -> [0, 1]'),
    ('points_load_dim=7', 'points_load_dim 6 -> 7'),
])
def test_segments_rerun_with_other_settings_is_refused_in_one_line(segments_copy, mask_builds, capfd, option, named):
    args, out = segments_copy
    before = _snapshot(out)
    capfd.readouterr()
    assert make_scene_segments.main(args + ['--cfg-options', option]) == 1
    assert _one_error_line(capfd) == (
        f'error: {out} holds 3 segment files (e.g. 000001) made with other settings ({named}); rerun with '
        '--overwrite to redo them with these settings, or choose another --segments-dir')
    assert mask_builds == [] and _snapshot(out) == before


def test_segments_same_settings_skip_and_overwrite_redoes_other_settings(segments_copy, mask_builds):
    args, out = segments_copy
    assert _sidecar(out, '000001')['output_settings']['segment_cfg']['pixel_origin'] == 1
    assert make_scene_segments.main(args) == 0
    assert _segment_report(out)['written'] == 0 and _segment_report(out)['already_finished'] == 3
    old = {n: np.fromfile(str(out / f'{n}.bin'), np.int64) for n in ('000001', '000002', '000003')}
    assert make_scene_segments.main(args + ['--overwrite', '--cfg-options', 'segment_cfg.pixel_origin=0']) == 0
    assert _segment_report(out)['written'] == 3
    for name, labels in old.items():
        meta = _sidecar(out, name)
        assert meta['output_settings']['segment_cfg']['pixel_origin'] == 0 and meta['settings']['pixel_origin'] == 0
    assert any(not np.array_equal(np.fromfile(str(out / f'{n}.bin'), np.int64), old[n]) for n in old)
    # --overwrite again with the same settings: nothing is stale, nothing is redone.
    stamps = {n: os.stat(out / f'{n}.bin').st_mtime_ns for n in old}
    assert make_scene_segments.main(args + ['--overwrite', '--cfg-options', 'segment_cfg.pixel_origin=0']) == 0
    assert _segment_report(out)['written'] == 0
    assert {n: os.stat(out / f'{n}.bin').st_mtime_ns for n in old} == stamps


def test_segment_files_written_before_settings_were_recorded_are_refused(segments_copy, mask_builds, capfd):
    args, out = segments_copy
    meta = _sidecar(out, '000002')
    del meta['settings_fingerprint'], meta['output_settings']
    (out / '000002.json').write_text(json.dumps(meta))
    capfd.readouterr()
    assert make_scene_segments.main(args) == 1
    assert _one_error_line(capfd) == (
        f'error: {out} holds 1 segment file (e.g. 000002) of unknown settings (written before settings were '
        'recorded); rerun with --overwrite to redo them with these settings, or choose another --segments-dir')
    assert mask_builds == []
    assert make_scene_segments.main(args + ['--overwrite']) == 0
    assert _segment_report(out)['written'] == 1 and 'settings_fingerprint' in _sidecar(out, '000002')


# ---------------------------------------------------------------------------------------------------- read-only
@contextlib.contextmanager
def _world_readable_folder():
    """A folder another account can enter (pytest's tmp_path is private to its owner)."""
    folder = tempfile.mkdtemp(prefix='sam_mtp_reruns_')
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        for path in glob.glob(os.path.join(folder, '**'), recursive=True):
            if os.path.isdir(path):
                os.chmod(path, 0o755)
        shutil.rmtree(folder)


@contextlib.contextmanager
def _read_only(folder):
    """``folder`` read-only for the block; root ignores permissions, so a root process acts as nobody."""
    os.chmod(folder, 0o555)
    try:
        if os.geteuid() == 0:
            os.setegid(65534)
            os.seteuid(65534)
            try:
                yield
            finally:
                os.seteuid(0)
                os.setegid(0)
        else:
            yield
    finally:
        os.chmod(folder, 0o755)


def test_read_only_output_folders_are_refused_before_any_model(synthetic_root, label_builds, mask_builds, capfd):
    import projects.sam_mtp.labels.segments.geometric  # noqa: F401  (numba caches its functions on import: as root)
    with _world_readable_folder() as base:
        out = os.path.join(base, 'read_only')
        os.mkdir(out)
        frames = os.path.join(base, 'scannet')  # readable by the other account: only the output folder is not
        shutil.copytree(synthetic_root, frames, ignore=shutil.ignore_patterns('points', 'instance_mask'))
        config = os.path.join(base, 'stand_in_sunrgbd.py')
        with open(config, 'w') as f:
            f.write(f"_base_ = [{SUNRGBD!r}]\nmask_source = dict(_delete_=True, type='InstanceImageMaskSource')\n")
        capfd.readouterr()
        with _read_only(out):
            assert generate_sam_labels.main(_label_args(frames, out)) == 1
            labels_line = _one_error_line(capfd)
            assert make_scene_segments.main([config, '--data-root', base, '--info', os.path.join(base, 'x.pkl'),
                                             '--segments-dir', out, '--no-progress']) == 1
            segments_line = _one_error_line(capfd)
        expected = f'error: output folder {out} is not writable (Permission denied); fix its permissions or choose ' \
                   'another one'
        assert labels_line == segments_line == expected
        assert label_builds == [] and mask_builds == [] and os.listdir(out) == []


# ---------------------------------------------------------------------------------------------------- permissions
@pytest.mark.parametrize('umask', [0o022, 0o002])
def test_written_files_get_the_permissions_of_the_umask(tmp_path, umask):
    from projects.sam_mtp.labels.fileio import atomic_save_npy, atomic_write_bytes
    from projects.sam_mtp.labels.formats.scene_segments import save_scene_segments
    from projects.sam_mtp.labels.formats.sens import SensHeader, SensWriter
    old = os.umask(umask)
    try:
        atomic_write_bytes(str(tmp_path / 'a.json'), b'{}')
        atomic_save_npy(str(tmp_path / 'b.npy'), np.zeros(3))
        save_scene_segments(str(tmp_path / 'c.bin'), np.zeros(4, np.int64), dict(method='geometric'))
        header = SensHeader(sensor_name='test', intrinsic_color=np.eye(4), extrinsic_color=np.eye(4),
                            intrinsic_depth=np.eye(4), extrinsic_depth=np.eye(4), color_width=4, color_height=2,
                            depth_width=4, depth_height=2)
        writer = SensWriter(str(tmp_path / 'd.sens'), header)
        writer.add_frame(np.zeros((2, 4, 3), np.uint8), np.zeros((2, 4), np.uint16), np.eye(4))
        writer.close()
    finally:
        os.umask(old)
    files = sorted(os.listdir(tmp_path))
    assert files == ['a.json', 'b.npy', 'c.bin', 'c.json', 'd.sens']  # no temporary file left
    assert {f: oct(stat.S_IMODE(os.stat(tmp_path / f).st_mode)) for f in files} == {f: oct(0o666 & ~umask)
                                                                                    for f in files}


# ---------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize('tool, extra', [
    ('labels', ['--shard', '3/3']),
    ('labels', ['--launcher', 'slurm']),
    ('labels', ['--cfg-options', 'label_cfg.num_point=3']),
    ('segments', ['--shard', '0/3', '--launcher', 'pytorch']),
    ('segments', ['--cfg-options', 'segment_cfg.tolerance=1']),
])
def test_bad_input_is_one_error_line(synthetic_root, tmp_path, capfd, monkeypatch, tool, extra):
    for var in ('SLURM_PROCID', 'SLURM_NTASKS'):
        monkeypatch.delenv(var, raising=False)
    capfd.readouterr()
    if tool == 'labels':
        assert generate_sam_labels.main(_label_args(synthetic_root, tmp_path / 'out') + extra) == 1
    else:
        assert make_scene_segments.main([SUNRGBD, '--data-root', str(tmp_path), '--info', str(tmp_path / 'x.pkl'),
                                         '--no-progress', *extra]) == 1
    assert not _one_error_line(capfd)[len('error: '):].startswith(('"', "'"))  # a KeyError's message unquoted
