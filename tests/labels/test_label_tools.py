"""The label command line: configs, sharded runs with automatic merge, launcher environments, failure exit
status, scene segments through tools/make_scene_segments.py, and resuming after the process is killed with SIGKILL."""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers.tools import load_tool
from mmengine.config import Config

from projects.sam_mtp.labels import build_label_source
from projects.sam_mtp.labels.formats.frame_labels import load_frame_labels, load_label_info

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
generate_sam_labels = load_tool('generate_sam_labels')
make_scene_segments = load_tool('make_scene_segments')

DEMO = os.path.join(REPO, 'configs', 'sam_mtp', 'labels', 'demo_stand_in.py')
REAL = os.path.join(REPO, 'configs', 'sam_mtp', 'labels', 'scannet_sam_dinov2.py')
SMALL = ['--cfg-options', 'label_cfg.num_points=128', 'label_cfg.mask_size=36,48', 'label_cfg.num_groups=3',
         'feature_source.short_side=28', 'feature_source.arch.embed_dims=16', 'feature_source.arch.num_layers=1']


def _args(synthetic_root, out, *extra):
    return [DEMO, '--frames-root', os.path.join(synthetic_root, 'posed_images'), '--out-dir', str(out),
            '--split-file', os.path.join(synthetic_root, 'meta_data', 'scannetv2_train.txt'),
            '--axis-align-root', os.path.join(synthetic_root, 'scans'), '--no-progress', *extra, *SMALL]


def test_label_configs_load_and_keep_the_spec_settings():
    real = Config.fromfile(REAL)
    assert real.mask_source.type == 'SAMAutomaticMaskSource' and real.mask_source.model_type == 'vit_h'
    spec = dict(points_per_side=32, pred_iou_thresh=0.86, stability_score_thresh=0.92, crop_n_layers=1,
                crop_n_points_downscale_factor=2, min_mask_region_area=100)
    assert {k: real.mask_source[k] for k in spec} == spec
    assert real.feature_source.type == 'DINOv2FeatureSource' and real.feature_source.arch == 'base'
    assert (real.feature_source.patch_size, real.feature_source.img_size) == (14, 518)
    assert real.label_cfg.frame_stride == 25 and real.label_cfg.num_points == 20000
    assert real.label_cfg.num_groups == 32
    for cfg in (real, Config.fromfile(DEMO)):
        for source in (cfg.mask_source, cfg.feature_source):
            assert not str(source.get('checkpoint', '')).startswith(('/', '~'))
    demo = Config.fromfile(DEMO)
    assert build_label_source(demo.mask_source).__class__.__name__ == 'InstanceImageMaskSource'
    assert build_label_source(demo.feature_source).feature_dim == 64
    # The real config names its missing checkpoint before building (or needing) anything.
    with pytest.raises(FileNotFoundError, match=r'sam_vit_h_4b8939\.pth: SAM \(vit_h\) checkpoint does not exist'):
        build_label_source(real.mask_source)
    with pytest.raises(FileNotFoundError, match=r'dinov2-pre_3rdparty_20230426-ba246503\.pth: DINOv2 ViT checkpoint'):
        build_label_source(real.feature_source)


def test_sharded_runs_merge_automatically(synthetic_root, tmp_path):
    out = tmp_path / 'labels'
    assert generate_sam_labels.main(_args(synthetic_root, out, '--shard', '0/2')) == 0
    assert not (out / 'train_labels.pkl').exists()  # shard 1 is not done yet
    assert generate_sam_labels.main(_args(synthetic_root, out, '--shard', '1/2')) == 0
    info = load_label_info(str(out / 'train_labels.pkl'))  # merged by the last shard
    assert len(info['data_list']) == 8 and info['metainfo']['num_groups'] == 3
    assert all(load_frame_labels(str(out / d['label_path']))['region_group'].min() >= 0 for d in info['data_list'])
    assert not (out / '_work' / 'train' / 'merge.lock').exists()
    # Explicit merge, reusing the finished frames; scene segments come from the one segments tool, which reuses
    # the region maps of this label root (the label tool no longer makes them).
    assert generate_sam_labels.main(_args(synthetic_root, out, '--merge')) == 0
    with pytest.raises(SystemExit):
        generate_sam_labels.main(_args(synthetic_root, out, '--merge', '--points-root', synthetic_root))
    assert make_scene_segments.main([
        os.path.join(REPO, 'configs', 'sam_mtp', 'segments', 'demo_scannet_stand_in.py'), '--data-root', synthetic_root,
        '--info', os.path.join(synthetic_root, 'scannet_infos_train.pkl'), '--labels-dir', str(out), '--frames-root',
        os.path.join(synthetic_root, 'posed_images'), '--segments-dir', str(tmp_path / 'segments'),
        '--no-progress']) == 0
    segments = np.fromfile(str(tmp_path / 'segments' / 'scene0001_00.bin'), np.int64)
    assert len(segments) == 6000 and segments.max() >= 1


def test_launcher_environment_selects_the_shard(synthetic_root, tmp_path, monkeypatch):
    out = tmp_path / 'labels'
    monkeypatch.setenv('SLURM_PROCID', '1')
    monkeypatch.setenv('SLURM_NTASKS', '3')
    assert generate_sam_labels.main(_args(synthetic_root, out, '--launcher', 'slurm', '--no-auto-merge')) == 0
    report = out / '_work' / 'train' / 'shards' / 'shard-1-of-3.json'
    assert report.exists()
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '3')
    assert generate_sam_labels.main(_args(synthetic_root, out, '--launcher', 'pytorch', '--no-auto-merge')) == 0
    assert generate_sam_labels.main(_args(synthetic_root, out, '--merge')) == 1  # shard 2 of 3 is missing
    assert generate_sam_labels.main(_args(synthetic_root, out, '--launcher', 'pytorch', '--shard', '0/3')) == 1


def test_failures_above_the_limit_exit_non_zero(synthetic_root, frames_copy, tmp_path):
    for scene in ('scene0000_00', 'scene0001_00'):
        with open(os.path.join(frames_copy, scene, 'color', '25.jpg'), 'wb') as f:
            f.write(b'corrupt')
    args = _args(synthetic_root, tmp_path / 'labels')
    args[args.index('--frames-root') + 1] = frames_copy
    assert generate_sam_labels.main(args) == 1  # 2 of 8 frames failed > 0.05
    assert not (tmp_path / 'labels' / 'train_labels.pkl').exists()
    assert generate_sam_labels.main(args + ['--max-failure-fraction', '0.3']) == 0
    assert len(load_label_info(str(tmp_path / 'labels' / 'train_labels.pkl'))['data_list']) == 6
    missing = _args(synthetic_root, tmp_path / 'other')
    missing[missing.index('--frames-root') + 1] = str(tmp_path / 'nowhere')
    assert generate_sam_labels.main(missing) == 1


def test_bad_frame_folders_stop_the_tool_before_any_frame(synthetic_root, frames_copy, tmp_path):
    from projects.sam_mtp.labels.formats.frames import EXPORT_DONE_MARKER
    args = _args(synthetic_root, tmp_path / 'labels')
    args[args.index('--frames-root') + 1] = frames_copy
    # depth units of the recording (its export marker) disagree with label_cfg.depth_scale
    with open(os.path.join(frames_copy, 'scene0001_00', EXPORT_DONE_MARKER), 'w') as f:
        json.dump(dict(depth_shift=4000.0), f)
    assert generate_sam_labels.main(args) == 1
    # an mmdet3d posed_images folder (no depth at all)
    posed = tmp_path / 'mmdet3d_posed_images' / 'scene0000_00'
    posed.mkdir(parents=True)
    (posed / 'intrinsic.txt').write_text('1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n')
    for i in range(3):
        (posed / f'{i:05d}.jpg').write_bytes(b'jpeg')
        (posed / f'{i:05d}.txt').write_text('1 0 0 0\n0 1 0 0\n0 0 1 0\n0 0 0 1\n')
    args[args.index('--frames-root') + 1] = str(tmp_path / 'mmdet3d_posed_images')
    args[args.index('--split-file'):args.index('--split-file') + 2] = []
    assert generate_sam_labels.main(args) == 1
    assert not glob.glob(str(tmp_path / 'labels' / '**' / '*.npz'), recursive=True)


SLOW_SOURCE = '''
import time
from mmdet3d.registry import MODELS
from projects.sam_mtp.labels import InstanceImageMaskSource


@MODELS.register_module(force=True)
class SlowInstanceMaskSource(InstanceImageMaskSource):
    def __call__(self, image, record):
        time.sleep(0.4)
        return super().__call__(image, record)
'''


def test_resume_after_sigkill(synthetic_root, tmp_path, monkeypatch):
    (tmp_path / 'slow_source_for_test.py').write_text(SLOW_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))  # the reruns below use the same (slow) config: same settings
    config = tmp_path / 'slow.py'
    config.write_text(f"_base_ = [{DEMO!r}]\ncustom_imports = dict(imports=['slow_source_for_test'], "
                      "allow_failed_imports=False)\nmask_source = dict(_delete_=True, type='SlowInstanceMaskSource')\n")
    out = tmp_path / 'labels'
    args = _args(synthetic_root, out)
    args[0] = str(config)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), REPO]))
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, 'tools', 'generate_sam_labels.py'), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while len(glob.glob(str(out / '*' / '*.npz'))) < 2:
            assert proc.poll() is None, 'the run ended before it could be killed'
            assert time.time() < deadline, 'no frame was written within two minutes'
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finished = sorted(glob.glob(str(out / '*' / '*.npz')))
    assert 2 <= len(finished) < 8
    for path in finished:
        load_frame_labels(path)  # every visible frame file is complete
    stamps = {path: os.stat(path).st_mtime_ns for path in finished}
    # The rerun skips the finished frames (they are neither recomputed nor rewritten) and labels the rest.
    rerun = _args(synthetic_root, out, '--no-auto-merge')
    rerun[0] = str(config)
    assert generate_sam_labels.main(rerun) == 0
    report = json.loads((out / '_work' / 'train' / 'shards' / 'shard-0-of-1.json').read_text())
    assert report['already_done'] == len(finished) and report['written'] == 8 - len(finished)
    assert {path: os.stat(path).st_mtime_ns for path in finished} == stamps
    merge = _args(synthetic_root, out, '--merge')
    merge[0] = str(config)
    assert generate_sam_labels.main(merge) == 0
    info = load_label_info(str(out / 'train_labels.pkl'))
    assert len(info['data_list']) == 8
    assert glob.glob(str(out / '**' / '.tmp-*'), recursive=True) == []  # leftovers of the kill are gone
