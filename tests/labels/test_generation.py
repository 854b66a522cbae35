"""Label generation end to end: file contents, resume after a kill, sharding, failures, merge, groups."""
import glob
import json
import os

import numpy as np
import pytest
import torch

from projects.sam_mtp.labels import (
    InstanceImageMaskSource,
    LabelGenerationError,
    LabelGenerator,
    RandomViTFeatureSource,
    build_label_source,
    group_weights,
    list_frames,
    merge_split,
)
from projects.sam_mtp.labels.formats.frame_labels import LabelPaths, load_frame_labels, load_label_info, read_region_map
from projects.sam_mtp.labels.frame_labels.pooling import pool_region_features
from projects.sam_mtp.labels.runner.sharding import select_shard, shard_from_env
from projects.sam_mtp.testing import tiny_sam_source_cfg, tiny_vit_source_cfg

CFG = dict(num_points=256, mask_size=(36, 48), num_groups=3, io_workers=2,
           kmeans=dict(max_samples=10000, n_init=2, max_iter=50))


def _feature_source():
    return RandomViTFeatureSource(arch=dict(embed_dims=16, num_layers=1, num_heads=2, feedforward_channels=32),
                                  short_side=28, seed=0)


def _generator(out, synthetic_root, mask_source=None, feature_source=None, **cfg):
    return LabelGenerator(mask_source or InstanceImageMaskSource(), feature_source or _feature_source(), str(out),
                          dict(CFG, **cfg), os.path.join(synthetic_root, 'scans'))


def _records(frames_root):
    return list_frames(frames_root)


def _tmp_files(root):
    return glob.glob(os.path.join(str(root), '**', '.tmp-*'), recursive=True)


def test_end_to_end_files_are_consistent(synthetic_root, tmp_path):
    frames_root = os.path.join(synthetic_root, 'posed_images')
    records = _records(frames_root)
    gen = _generator(tmp_path / 'labels', synthetic_root)
    report = gen.run(records, 'train', progress=False)
    assert report['written'] == 8 and report['failures'] == []
    groups = merge_split(str(tmp_path / 'labels'), records, 'train', CFG, progress=False)
    info = load_label_info(str(tmp_path / 'labels' / 'train_labels.pkl'))
    meta = info['metainfo']
    assert meta['num_groups'] == 3 and meta['feature_dim'] == 16 and len(info['data_list']) == 8
    counts = np.zeros(3, int)
    paths = LabelPaths(str(tmp_path / 'labels'))
    for item, record in zip(info['data_list'], records):
        assert item['label_path'] == f'{record.scene}/{record.frame_id:06d}.npz'  # relative
        arrays = load_frame_labels(os.path.join(str(tmp_path / 'labels'), item['label_path']))
        assert arrays['points'].shape == (256, 3) and item['num_regions'] == len(arrays['region_feat'])
        assert ((arrays['region_group'] >= 0) & (arrays['region_group'] < 3)).all()
        counts += np.bincount(arrays['region_group'], minlength=3)
        # A point's region is the region map's id at its stored pixel.
        region_map = read_region_map(paths.region_map(record.scene, record.frame_id))
        rows, cols = arrays['point_pixel'].T
        np.testing.assert_array_equal(arrays['point_region'], region_map[rows, cols])
        np.testing.assert_array_equal(arrays['region_area'], np.bincount(region_map.ravel())[1:])
    assert meta['group_counts'] == counts.tolist() == groups['group_counts']
    np.testing.assert_allclose(meta['group_weights'], group_weights(counts))
    saved = json.load(open(paths.groups('train')))
    assert saved['group_counts'] == counts.tolist() and saved['num_groups'] == 3
    assert np.load(paths.centroids('train')).shape == (3, 16)
    # Region targets are the mean of the up-sampled features of the frame (float16).
    record = records[5]
    frame = gen.read(record)
    region_map = read_region_map(paths.region_map(record.scene, record.frame_id))
    mean, peak = pool_region_features(gen.feature_source(frame.color), region_map)
    arrays = load_frame_labels(paths.frame(record.scene, record.frame_id))
    np.testing.assert_allclose(arrays['region_feat'].astype(np.float32), mean.numpy(), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(np.load(paths.group_features(record.scene, record.frame_id)).astype(np.float32),
                               peak.numpy(), rtol=2e-3, atol=2e-3)
    assert _tmp_files(tmp_path) == []
    # The pretraining dataset reads the split as written.
    from projects.sam_mtp.datasets import SamMtpFrameDataset
    dataset = SamMtpFrameDataset(ann_file='train_labels.pkl', data_root=str(tmp_path / 'labels'), pipeline=[])
    item = dataset[0]
    assert len(dataset) == 8 and item['region_feat'].shape[1] == 16 and item['num_groups'] == 3
    np.testing.assert_allclose(item['region_weight'], np.asarray(meta['group_weights'])[item['region_group']])


def test_resume_after_a_kill_skips_finished_frames_and_redoes_corrupt_ones(synthetic_root, tmp_path):
    records = _records(os.path.join(synthetic_root, 'posed_images'))
    out = tmp_path / 'labels'
    gen = _generator(out, synthetic_root)
    with pytest.raises(RuntimeError, match='simulated kill after 3 frames'):
        gen.run(records, 'train', progress=False, fail_after=3)
    finished = sorted(glob.glob(str(out / '*' / '*.npz')))
    # Writes already handed to the writer thread complete before the exception leaves run().
    assert 3 <= len(finished) < 8 and _tmp_files(out) == []
    stamps = {p: os.path.getmtime(p) for p in finished}
    report = _generator(out, synthetic_root).run(records, 'train', progress=False)
    assert report['already_done'] == len(finished) and report['written'] == 8 - len(finished)
    assert all(os.path.getmtime(p) == t for p, t in stamps.items())
    # A half-written (truncated) frame file is detected and redone; nothing else is touched.
    victim = finished[1]
    data = open(victim, 'rb').read()
    open(victim, 'wb').write(data[:len(data) // 2])
    report = _generator(out, synthetic_root).run(records, 'train', progress=False)
    assert report['already_done'] == 7 and report['written'] == 1
    load_frame_labels(victim)
    # A missing sidecar also makes the frame unfinished.
    os.remove(LabelPaths(str(out)).group_features(records[0].scene, records[0].frame_id))
    assert _generator(out, synthetic_root).run(records, 'train', progress=False)['written'] == 1


def test_shards_partition_frames_and_reproduce_the_single_run(synthetic_root, tmp_path):
    records = _records(os.path.join(synthetic_root, 'posed_images'))
    for total in (1, 2, 3, 5):
        keys = [r.key for i in range(total) for r in select_shard(records, i, total)]
        assert sorted(keys) == sorted(r.key for r in records) and len(set(keys)) == len(keys)
    with pytest.raises(ValueError, match='out of range'):
        select_shard(records, 2, 2)
    single, sharded = tmp_path / 'single', tmp_path / 'sharded'
    _generator(single, synthetic_root).run(records, 'train', progress=False)
    reports = [_generator(sharded, synthetic_root).run(records, 'train', (i, 2), progress=False) for i in range(2)]
    assert sum(r['written'] for r in reports) == 8 and all(r['written'] for r in reports)
    g1 = merge_split(str(single), records, 'train', CFG, progress=False)
    g2 = merge_split(str(sharded), records, 'train', CFG, workers=2, progress=False)
    assert g1['group_counts'] == g2['group_counts']
    np.testing.assert_array_equal(np.load(LabelPaths(str(single)).centroids('train')),
                                  np.load(LabelPaths(str(sharded)).centroids('train')))
    for r in records:
        a = load_frame_labels(LabelPaths(str(single)).frame(r.scene, r.frame_id))
        b = load_frame_labels(LabelPaths(str(sharded)).frame(r.scene, r.frame_id))
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_shard_from_launcher_environment(monkeypatch):
    monkeypatch.setenv('RANK', '3')
    monkeypatch.setenv('WORLD_SIZE', '4')
    monkeypatch.setenv('SLURM_PROCID', '1')
    monkeypatch.setenv('SLURM_NTASKS', '2')
    assert shard_from_env('pytorch') == (3, 4) and shard_from_env('slurm') == (1, 2)
    assert shard_from_env('none') == (0, 1)
    monkeypatch.delenv('WORLD_SIZE')
    with pytest.raises(RuntimeError, match='needs RANK and WORLD_SIZE'):
        shard_from_env('pytorch')


def test_failures_are_counted_and_limit_the_merge(synthetic_root, frames_copy, tmp_path):
    import cv2
    records = _records(frames_copy)
    by_key = {r.key: r for r in records}
    open(by_key['scene0000_00/0'].color_path, 'wb').write(b'broken')
    os.remove(by_key['scene0000_00/25'].pose_path)
    np.savetxt(by_key['scene0000_00/50'].pose_path, np.full((4, 4), np.inf))
    cv2.imwrite(by_key['scene0001_00/0'].depth_path, np.zeros((48, 64), np.uint16))
    out = str(tmp_path / 'labels')
    report = _generator(out, synthetic_root).run(records, 'train', progress=False)
    assert report['failure_kinds'] == dict(corrupt_image=1, missing_pose=1, invalid_pose=1, invalid_depth=1)
    assert report['written'] == 4 and report['failure_fraction'] == pytest.approx(3 / 8)
    saved = json.load(open(LabelPaths(out).shard_report('train', 0, 1)))
    assert {f['key'] for f in saved['failures']} == {'scene0000_00/0', 'scene0000_00/25', 'scene0000_00/50',
                                                     'scene0001_00/0'}
    with pytest.raises(LabelGenerationError, match=r'3 of 8 frames failed.*0\.375 > max_failure_fraction 0\.05'):
        merge_split(out, records, 'train', CFG, progress=False)
    merge_split(out, records, 'train', dict(CFG, max_failure_fraction=0.5), progress=False)
    meta = load_label_info(os.path.join(out, 'train_labels.pkl'))['metainfo']
    assert meta['num_labelled'] == 4 and meta['skipped']['invalid_pose'] == 1


def test_merge_refuses_missing_shards_and_reuses_groups(synthetic_root, tmp_path):
    records = _records(os.path.join(synthetic_root, 'posed_images'))
    out = str(tmp_path / 'labels')
    _generator(out, synthetic_root).run(records, 'train', (0, 2), progress=False)
    with pytest.raises(LabelGenerationError, match='have neither labels nor a recorded failure'):
        merge_split(out, records, 'train', CFG, progress=False)
    _generator(out, synthetic_root).run(records, 'train', (1, 2), progress=False)
    merge_split(out, records, 'train', CFG, progress=False)
    # Another split (here: scene 1 again, as "val") reuses train's centroids instead of fitting its own.
    val = [r for r in records if r.scene == 'scene0001_00']
    groups = merge_split(out, val, 'val', dict(CFG, num_groups=7), groups_from=LabelPaths(out).groups('train'),
                         progress=False)
    assert groups['num_groups'] == 3 and groups['reused_from'] == 'train_groups.json'
    paths = LabelPaths(out)
    np.testing.assert_array_equal(np.load(paths.centroids('val')), np.load(paths.centroids('train')))


def test_real_sam_and_dinov2_paths_with_tiny_models(synthetic_root, tiny_sam_checkpoint, tiny_vit_checkpoint,
                                                    tmp_path):
    records = [r for r in _records(os.path.join(synthetic_root, 'posed_images')) if r.scene == 'scene0000_00'][:2]
    sam = build_label_source(tiny_sam_source_cfg(tiny_sam_checkpoint))
    dino = build_label_source(tiny_vit_source_cfg(tiny_vit_checkpoint))
    out = str(tmp_path / 'labels')
    report = _generator(out, synthetic_root, sam, dino, num_groups=1).run(records, 'train', progress=False)
    assert report['written'] == 2
    merge_split(out, records, 'train', dict(CFG, num_groups=1), progress=False)
    arrays = load_frame_labels(LabelPaths(out).frame('scene0000_00', 0))
    assert arrays['region_feat'].shape[1] == 32 and (arrays['region_group'] == 0).all()
    # With impossible thresholds SAM finds nothing: a counted 'no_mask' failure per frame, no files.
    empty = build_label_source(tiny_sam_source_cfg(tiny_sam_checkpoint, pred_iou_thresh=2.0))
    report = _generator(tmp_path / 'none', synthetic_root, empty, dino).run(records, 'train', progress=False)
    assert report['failure_kinds'] == dict(no_mask=2) and report['written'] == 0
    assert report['failure_fraction'] == 1.0 and not glob.glob(str(tmp_path / 'none' / '*' / '*.npz'))


def test_unexpected_errors_are_contained(synthetic_root, tmp_path):
    class Flaky:
        calls = 0

        def __call__(self, image, record):
            self.calls += 1
            if record.frame_id == 50:
                raise torch.cuda.OutOfMemoryError('CUDA out of memory (simulated)')
            return InstanceImageMaskSource()(image, record)

    records = _records(os.path.join(synthetic_root, 'posed_images'))
    report = _generator(tmp_path, synthetic_root, Flaky()).run(records, 'train', progress=False)
    assert report['failure_kinds'] == dict(error=2) and report['written'] == 6
    assert 'OutOfMemoryError' in report['failures'][0]['message']
    with pytest.raises(KeyError, match="unknown label setting 'num_point'"):
        _generator(tmp_path, synthetic_root, num_point=3)


def test_depth_scale_mismatch_is_refused_before_any_frame(synthetic_root, frames_copy, tmp_path):
    from projects.sam_mtp.labels.formats.frames import EXPORT_DONE_MARKER
    with open(os.path.join(frames_copy, 'scene0000_00', EXPORT_DONE_MARKER), 'w') as f:
        json.dump(dict(depth_shift=1000.0), f)
    out = tmp_path / 'labels'
    with pytest.raises(ValueError, match=r'depth_shift 1000\) but label_cfg\.depth_scale is 5000'):
        _generator(out, synthetic_root, depth_scale=5000.0).run(_records(frames_copy), 'train', progress=False)
    assert not glob.glob(str(out / '**' / '*.npz'), recursive=True)


def test_atomic_write_keeps_the_old_file_when_the_writer_raises(tmp_path):
    from projects.sam_mtp.labels.fileio import atomic_write, atomic_write_bytes
    target = tmp_path / 'labels.pkl'
    atomic_write_bytes(str(target), b'old content')

    def broken_writer(f):
        f.write(b'half of the new')
        raise OSError('disk full (simulated)')

    with pytest.raises(OSError, match='disk full'):
        atomic_write(str(target), broken_writer)
    assert target.read_bytes() == b'old content'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['labels.pkl']  # no temporary file left
    with pytest.raises(KeyboardInterrupt):  # also for an interrupt, not only for errors
        atomic_write(str(target), lambda f: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert target.read_bytes() == b'old content' and len(list(tmp_path.iterdir())) == 1
