"""Scene segments: the cross-view merge rule on hand-made observations, the file format, and the ScanNet path of
tools/make_scene_segments.py on a synthetic scene with ground-truth instance images standing in for SAM."""
import json
import os

import numpy as np
import pytest

from projects.sam_mtp.labels import (
    InstanceImageMaskSource,
    LabelGenerator,
    RandomViTFeatureSource,
    list_frames,
    make_scannet_segments,
)
from projects.sam_mtp.labels.formats.scene_segments import (
    compact_segments,
    load_scene_segments,
    read_segment_meta,
    save_scene_segments,
)
from projects.sam_mtp.labels.segments.multi_view import merge_scene_segments


def _merge(views, num_points=12, **kwargs):
    visible = [np.asarray(v, np.int64) for v, _ in views]
    regions = [np.asarray(r, np.int64) for _, r in views]
    kwargs.setdefault('min_shared_points', 2)
    return merge_scene_segments(num_points, visible, regions, **kwargs)


def test_partial_views_of_one_object_merge():
    # Object A = points 0..5, object B = points 6..9; points 10, 11 are never in a region.
    views = [
        (range(0, 6), [1] * 6),                      # view 0 sees all of A
        (range(3, 11), [1, 1, 1, 2, 2, 2, 2, 0]),    # view 1 sees half of A, all of B, point 10 in no region
    ]
    labels = _merge(views)
    # Plain IoU of A's two regions is 3/6; on the points both views see it is 1, so they merge.
    np.testing.assert_array_equal(labels, [0] * 6 + [1] * 4 + [-1, -1])
    # A stricter rule than the data supports keeps them apart.
    np.testing.assert_array_equal(_merge(views, min_shared_points=4)[:6], [0, 0, 0, 1, 1, 1])


def test_unrelated_regions_stay_apart_and_specific_regions_win_votes():
    views = [
        (range(0, 6), [1] * 6),
        (range(3, 11), [1, 1, 1, 2, 2, 2, 2, 0]),
        (range(0, 10), [1] * 10),                    # an under-segmented view: one mask over A and B
    ]
    labels = _merge(views, iou_threshold=0.7)
    # The coarse region joins A (IoU 1 on common points) but not B (IoU 4/7); B's points follow the specific
    # region of view 1 (vote weight 1/4 against 1/10).
    np.testing.assert_array_equal(labels, [0] * 6 + [1] * 4 + [-1, -1])
    chained = _merge(views, iou_threshold=0.5)  # a permissive threshold chains A and B through the coarse mask
    assert len(set(chained[:10].tolist())) == 1
    assert (_merge([], num_points=3) == -1).all()
    small = _merge(views, iou_threshold=0.7, min_segment_points=5)
    np.testing.assert_array_equal(small, [0] * 6 + [-1] * 6)


def test_compact_segments_numbers_by_first_point_and_drops_small_ones():
    labels = np.array([7, 7, -1, 3, 9, 3, 3, 9, -5])
    np.testing.assert_array_equal(compact_segments(labels), [0, 0, -1, 1, 2, 1, 1, 2, -1])
    np.testing.assert_array_equal(compact_segments(labels, min_segment_points=3), [-1, -1, -1, 0, -1, 0, 0, -1, -1])


def test_segment_file_round_trip(tmp_path):
    labels = np.array([3, -1, 0], np.int64)
    path = str(tmp_path / 'segs' / 'scene.bin')
    save_scene_segments(path, labels, dict(method='geometric', num_points=3))
    np.testing.assert_array_equal(load_scene_segments(path, 3), labels)
    with pytest.raises(ValueError, match=r'scene\.bin: has 3 segment ids but the scene has 4 points'):
        load_scene_segments(path, 4)
    meta = read_segment_meta(path)
    assert meta['method'] == 'geometric' and meta['sam'] is False and 'NOT SAM' in meta['description']
    with pytest.raises(ValueError, match='unknown segment method'):
        save_scene_segments(path, labels, dict(method='sam'))


def test_synthetic_scene_segments_follow_instances(synthetic_root, tmp_path):
    """tools/make_scene_segments.py's ScanNet path (Python API) on the region maps of a label run."""
    records = list_frames(os.path.join(synthetic_root, 'posed_images'))
    out = str(tmp_path / 'labels')
    gen = LabelGenerator(InstanceImageMaskSource(),
                         RandomViTFeatureSource(arch=dict(embed_dims=8, num_layers=1, num_heads=2,
                                                          feedforward_channels=16), short_side=28),
                         out, dict(num_points=64, mask_size=(72, 96)), os.path.join(synthetic_root, 'scans'))
    gen.run(records, 'train', progress=False)
    segments_dir = str(tmp_path / 'scene_segments')
    info = os.path.join(synthetic_root, 'scannet_infos_train.pkl')
    kwargs = dict(frames_root=os.path.join(synthetic_root, 'posed_images'), labels_dir=out,
                  segment_cfg=dict(depth_tolerance=0.05), segments_dir=segments_dir, progress=False)
    report = make_scannet_segments(synthetic_root, [info], **kwargs)
    assert report['written'] == 2 and not report['failures']
    for scene in ('scene0000_00', 'scene0001_00'):
        labels = load_scene_segments(os.path.join(segments_dir, f'{scene}.bin'))
        truth = np.fromfile(os.path.join(synthetic_root, 'instance_mask', f'{scene}.bin'), np.int64)
        assert len(labels) == len(truth) == 6000
        seen = labels >= 0
        assert seen.mean() > 0.2  # 4 small views of a room
        # Purity: nearly every point of a segment belongs to the segment's majority instance.
        pure = sum(np.bincount(truth[labels == s]).max() for s in np.unique(labels[seen]))
        assert pure / seen.sum() > 0.95
        # Each instance is mostly one segment. With 4 views some parts of an instance are seen by views that
        # share no point, which no rule can link, so this is checked loosely.
        big = [i for i in np.unique(truth[seen]) if (truth[seen] == i).sum() >= 50]
        for inst in big:
            assert np.bincount(labels[seen & (truth == inst)]).max() / (seen & (truth == inst)).sum() >= 0.5
        meta = read_segment_meta(os.path.join(segments_dir, f'{scene}.bin'))
        assert meta['method'] == 'sam_multi_view' and meta['sam'] is True and meta['views_used'] == 4
        assert meta['num_points'] == 6000 and meta['settings']['region_maps'] == 'labels_dir'
    # Without a label root the mask source runs on the frames now; at the labels' mask size it gives the same maps,
    # hence the same segments.
    live_dir = str(tmp_path / 'live_segments')
    report = make_scannet_segments(synthetic_root, [info], frames_root=kwargs['frames_root'],
                                   mask_source=dict(type='InstanceImageMaskSource'), segments_dir=live_dir,
                                   segment_cfg=dict(depth_tolerance=0.05, mask_size=(72, 96)), progress=False)
    assert report['written'] == 2 and report['mean_seconds']['model_seconds'] > 0
    for scene in ('scene0000_00', 'scene0001_00'):
        np.testing.assert_array_equal(load_scene_segments(os.path.join(live_dir, f'{scene}.bin')),
                                      load_scene_segments(os.path.join(segments_dir, f'{scene}.bin')))
    # Rerun: finished scenes are skipped; a stale file (the points changed) is an error naming the scene.
    assert make_scannet_segments(synthetic_root, [info], **kwargs)['written'] == 0
    np.zeros(5999, np.int64).tofile(os.path.join(segments_dir, 'scene0001_00.bin'))
    report = make_scannet_segments(synthetic_root, [info], **kwargs)
    assert [f['kind'] for f in report['failures']] == ['point_count_mismatch']
    assert 'scene0001_00' in report['failures'][0]['message'] and '5999' in report['failures'][0]['message']
    with open(os.path.join(segments_dir, '_work', 'shard-0-of-1.json')) as f:
        assert json.load(f)['failure_kinds'] == dict(point_count_mismatch=1)
    # --overwrite redoes the stale file; the other one was made with these settings and is kept.
    kept = os.stat(os.path.join(segments_dir, 'scene0000_00.bin')).st_mtime_ns
    assert make_scannet_segments(synthetic_root, [info], overwrite=True, **kwargs)['written'] == 1
    assert len(load_scene_segments(os.path.join(segments_dir, 'scene0001_00.bin'))) == 6000
    assert os.stat(os.path.join(segments_dir, 'scene0000_00.bin')).st_mtime_ns == kept
    with pytest.raises(KeyError, match='unknown posed_frames segment setting'):
        make_scannet_segments(synthetic_root, [info], **dict(kwargs, segment_cfg=dict(tolerance=1)))


def test_segment_ids_must_fit_the_float32_point_column(tmp_path):
    """Ids travel as a float32 point column, exact only below 2**24: the one reader refuses the first id beyond."""
    path = str(tmp_path / 'scene.bin')
    save_scene_segments(path, np.array([-1, 0, 2**24 - 1]))
    np.testing.assert_array_equal(load_scene_segments(path, 3), [-1, 0, 16777215])
    assert np.float32(2**24 - 1) != np.float32(2**24 - 2) and np.float32(2**24 + 1) == np.float32(2**24)
    for bad in (2**24, -2):
        save_scene_segments(path, np.array([0, bad]))
        with pytest.raises(ValueError, match=r'scene\.bin: segment ids must lie in \[-1, 16777215\]'):
            load_scene_segments(path)
