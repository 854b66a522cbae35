"""SamMtpFrameDataset, the frame transforms and sam_mtp_collate on label files written in-test."""
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import projects.sam_mtp.datasets  # noqa: F401 (registration)
from projects.sam_mtp.datasets import (
    FrameCenterPoints,
    FrameRandomDropout,
    FrameRandomJitter,
    FrameRandomRotScale,
    FrameSamplePoints,
    PackFrameInputs,
    SamMtpFrameDataset,
    sam_mtp_collate,
)
from projects.sam_mtp.labels.formats.frame_labels import LabelFormatError, group_weights

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..'))  # tests/: shared helpers
from helpers.labels import make_frame_arrays, write_label_split  # noqa: E402

PIPELINE = [
    dict(type='FrameCenterPoints', axes='xy'),
    dict(type='FrameRandomRotScale'),
    dict(type='FrameRandomJitter'),
    dict(type='FrameRandomDropout', max_ratio=0.2),
    dict(type='FrameSamplePoints', num_points=64),
    dict(type='PackFrameInputs'),
]


def _frames(seed=0, count=3, feature_dim=8):
    rng = np.random.default_rng(seed)
    sizes = [(40, 30, 20, 5), (25, 18), (12, 12, 12, 12, 12)]
    return [make_frame_arrays(rng, sizes[i % 3], 10, feature_dim, 3) for i in range(count)]


def _dataset(root, ann, **kwargs):
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        return SamMtpFrameDataset(ann_file=ann, data_root=str(root), **kwargs)


def test_dataset_items_and_metainfo(tmp_path):
    frames = _frames()
    write_label_split(str(tmp_path), frames)
    np.random.seed(0)
    ds = _dataset(tmp_path, 'train_labels.pkl', pipeline=PIPELINE)
    assert len(ds) == 3
    meta = ds.metainfo
    assert meta['feature_dim'] == 8 and meta['num_groups'] == 3 and len(meta['group_weights']) == 3
    for i in range(3):
        item = ds[i]
        inputs, samples = item['inputs'], item['data_samples']
        assert inputs['points'].shape == (64, 3) and inputs['points'].dtype == torch.float32
        assert inputs['point_region'].dtype == torch.int64
        assert inputs['point_region'].max() <= samples['region_feat'].shape[0]
        expected_feat = torch.from_numpy(frames[i]['region_feat'].astype(np.float32))
        torch.testing.assert_close(samples['region_feat'], expected_feat)
        expected_w = np.asarray(meta['group_weights'], np.float32)[frames[i]['region_group']]
        torch.testing.assert_close(samples['region_weight'], torch.from_numpy(expected_w))
        assert samples['num_groups'] == 3
        assert samples['metainfo']['label_path'] == osp.join(str(tmp_path), f'scene{i:04d}_00', '000000.npz')


def test_cached_frames_are_read_once_and_give_the_same_items(tmp_path, monkeypatch):
    """cache_frames: each label file is read once; items equal the uncached ones under the same random state, and
    changing an item's arrays in place leaves the next item of that frame untouched."""
    from projects.sam_mtp.datasets import frame_dataset
    write_label_split(str(tmp_path), _frames())
    reads = []
    real = frame_dataset.load_frame_labels
    monkeypatch.setattr(frame_dataset, 'load_frame_labels', lambda path: reads.append(path) or real(path))
    plain = _dataset(tmp_path, 'train_labels.pkl', pipeline=PIPELINE, load_colors=True)
    cached = _dataset(tmp_path, 'train_labels.pkl', pipeline=PIPELINE, load_colors=True, cache_frames=True)
    for epoch in range(3):
        for i in range(3):
            np.random.seed(10 * epoch + i)
            a = plain[i]
            np.random.seed(10 * epoch + i)
            b = cached[i]
            for key in ('points', 'point_region'):
                assert torch.equal(a['inputs'][key], b['inputs'][key])
            assert torch.equal(a['data_samples']['region_feat'], b['data_samples']['region_feat'])
            raw = cached.load_frame(cached.get_data_info(i))
            for key in ('points', 'colors', 'region_feat'):
                raw[key] += 1  # an in-place change of an item's array ...
            again = cached.load_frame(cached.get_data_info(i))
            assert not np.array_equal(again['points'], raw['points'])  # ... never reaches the cache
            assert not np.array_equal(again['colors'], raw['colors'])
    assert len(reads) == 3 * 3 + 3  # the plain dataset reads every time, the cached one once per frame


def test_runner_dataloader_resolves_collate(tmp_path):
    write_label_split(str(tmp_path), _frames())
    cfg = dict(batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
               collate_fn=dict(type='sam_mtp_collate'),
               dataset=dict(type='SamMtpFrameDataset', data_root=str(tmp_path), ann_file='train_labels.pkl',
                            pipeline=[dict(type='FrameSamplePoints', num_points=None),
                                      dict(type='PackFrameInputs')]))
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        loader = Runner.build_dataloader(cfg, seed=0)
        batch = next(iter(loader))
    points, region = batch['inputs']['points'], batch['inputs']['point_region']
    n0, n1 = 40 + 30 + 20 + 5 + 10, 25 + 18 + 10
    assert points.shape == (2, n0, 3)
    assert torch.all(region[1, n1:] == -1) and torch.all(points[1, n1:] == 0)
    assert batch['data_samples']['num_points'].tolist() == [n0, n1]
    samples = batch['data_samples']
    assert samples['region_feat'].shape == (2, 4, 8)
    assert samples['region_mask'].tolist() == [[True] * 4, [True, True, False, False]]
    assert torch.all(samples['region_weight'][1, 2:] == 0) and torch.all(samples['region_group'][1, 2:] == -1)


def test_collate_rejects_mixed_widths_and_bad_items():
    pack = PackFrameInputs()
    rng = np.random.default_rng(0)
    items = []
    for dim in (8, 6):
        a = make_frame_arrays(rng, feature_dim=dim)
        items.append(pack(dict(points=a['points'], point_region=a['point_region'],
                               region_feat=a['region_feat'].astype(np.float32), label_path=f'frame_{dim}.npz')))
    with pytest.raises(ValueError, match=r'different region_feat widths \[6, 8\].*frame_8\.npz'):
        sam_mtp_collate(items)
    with pytest.raises(ValueError, match='item 0 is not a PackFrameInputs output'):
        sam_mtp_collate([dict(points=1)])
    with pytest.raises(ValueError, match='empty batch'):
        sam_mtp_collate([])


def _coded_frame(n=100):
    """x coordinate = region id, so region ids can be checked to follow their points."""
    rng = np.random.default_rng(0)
    region = rng.integers(0, 5, n)
    points = np.stack([region.astype(np.float32), rng.normal(size=n), rng.normal(size=n)], 1).astype(np.float32)
    return dict(points=points, point_region=region.astype(np.int64), colors=np.zeros((n, 3), np.uint8))


@pytest.mark.parametrize('transform', [FrameRandomDropout(0.5), FrameSamplePoints(30), FrameSamplePoints(250)])
def test_point_selection_keeps_regions_in_step(transform):
    np.random.seed(0)
    out = transform(_coded_frame())
    assert np.array_equal(out['points'][:, 0], out['point_region'].astype(np.float32))
    assert len(out['colors']) == len(out['points'])
    if isinstance(transform, FrameSamplePoints):
        assert len(out['points']) == transform.num_points
        if transform.num_points > 100:
            assert len(np.unique(out['points'], axis=0)) == 100  # all originals kept, rest repeats
        else:
            assert len(np.unique(out['points'], axis=0)) == 30  # without replacement


def test_geometric_transforms():
    np.random.seed(0)
    frame = _coded_frame()
    pts = frame['points'].copy()
    rotated = FrameRandomRotScale(scale_range=(1., 1.))(dict(frame, points=pts.copy()))['points']
    np.testing.assert_allclose(np.linalg.norm(rotated[:, :2], axis=1), np.linalg.norm(pts[:, :2], axis=1),
                               rtol=1e-5)
    np.testing.assert_allclose(rotated[:, 2], pts[:, 2], rtol=1e-6)
    scaled = FrameRandomRotScale(rotation_range=0., scale_range=(2., 2.))(dict(frame, points=pts.copy()))
    np.testing.assert_allclose(scaled['points'], 2 * pts, rtol=1e-6)
    jittered = FrameRandomJitter(sigma=1., clip=0.05)(dict(frame, points=pts.copy()))['points']
    assert np.abs(jittered - pts).max() <= 0.05 + 1e-6 and np.abs(jittered - pts).max() > 0
    centred = FrameCenterPoints('xy')(dict(frame, points=pts.copy()))['points']
    np.testing.assert_allclose(centred[:, :2].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(centred[:, 2], pts[:, 2])
    with pytest.raises(ValueError, match='must be an \\(N, 3\\) array'):
        FrameRandomJitter()(dict(points=np.zeros((4, 2)), label_path='x.npz'))
    with pytest.raises(ValueError, match='max_ratio'):
        FrameRandomDropout(1.0)
    with pytest.raises(ValueError, match="axes must be 'xy' or 'xyz'"):
        FrameCenterPoints('z')


def test_bad_label_files_name_the_file(tmp_path):
    frames = _frames()
    write_label_split(str(tmp_path), frames)
    ds = _dataset(tmp_path, 'train_labels.pkl', pipeline=[dict(type='PackFrameInputs')])
    path = osp.join(str(tmp_path), 'scene0001_00', '000000.npz')
    # mismatched point/region counts (written around the validating writer)
    bad = dict(frames[1])
    bad['point_region'] = bad['point_region'][:-3]
    np.savez_compressed(path, **bad)
    with pytest.raises(LabelFormatError, match=r'scene0001_00.000000\.npz: .*mismatched point/region counts'):
        ds[1]
    # NaN targets
    bad = dict(frames[1])
    bad['region_feat'] = bad['region_feat'].copy()
    bad['region_feat'][0, 0] = np.nan
    np.savez_compressed(path, **bad)
    with pytest.raises(LabelFormatError, match=r'scene0001_00.000000\.npz: region_feat contains NaN'):
        ds[1]
    # ungrouped region while groups are required
    bad = dict(frames[1])
    bad['region_group'] = np.full_like(bad['region_group'], -1)
    np.savez_compressed(path, **bad)
    with pytest.raises(LabelFormatError, match=r'scene0001_00.000000\.npz: 2 regions have a group outside'):
        ds[1]
    # a target width other than the split's feature_dim
    np.savez_compressed(path, **dict(frames[1], region_feat=frames[1]['region_feat'][:, :5]))
    with pytest.raises(LabelFormatError, match='has 5 channels, the split metainfo says feature_dim=8'):
        ds[1]
    with pytest.raises(LabelFormatError, match='label info file does not exist'):
        _dataset(tmp_path, 'val_labels.pkl')


def test_zero_region_frames_are_skipped_or_raise(tmp_path):
    frames = _frames()
    empty = dict(frames[1])
    empty['point_region'] = np.zeros_like(empty['point_region'])  # no point in any region
    frames[1] = empty
    write_label_split(str(tmp_path), frames)
    np.random.seed(0)
    ds = _dataset(tmp_path, 'train_labels.pkl', pipeline=[dict(type='PackFrameInputs')])
    assert len(ds) == 3  # num_regions in the info is 2, so only the load-time check can catch it
    item = ds[1]  # replaced by another frame
    assert item['data_samples']['metainfo']['sample_idx'] != 1
    strict = _dataset(tmp_path, 'train_labels.pkl', pipeline=[dict(type='PackFrameInputs')],
                      skip_empty_frames=False)
    with pytest.raises(LabelFormatError, match=r'scene0001_00.000000\.npz: frame has no SAM region'):
        strict[1]


def test_info_filter_and_group_requirements(tmp_path):
    frames = _frames()
    frames[2] = dict(make_frame_arrays(np.random.default_rng(3), (), 20, 8, 3))  # R = 0
    write_label_split(str(tmp_path), frames)
    ds = _dataset(tmp_path, 'train_labels.pkl', pipeline=[dict(type='PackFrameInputs')])
    assert len(ds) == 2  # filtered from num_regions in the info
    write_label_split(str(tmp_path), _frames(), split='nogroups', with_groups=False)
    with pytest.raises(LabelFormatError, match=r'nogroups_labels\.pkl: metainfo has no group_weights'):
        _dataset(tmp_path, 'nogroups_labels.pkl')
    ds = _dataset(tmp_path, 'nogroups_labels.pkl', pipeline=[dict(type='PackFrameInputs')],
                  require_groups=False)
    samples = ds[0]['data_samples']
    assert samples['num_groups'] == 1 and torch.all(samples['region_weight'] == 1)
    write_label_split(str(tmp_path), _frames(), split='badk',
                      extra_metainfo=dict(group_weights=group_weights([1, 2]).tolist()))
    with pytest.raises(LabelFormatError, match='group_weights has shape \\(2,\\) but num_groups is 3'):
        _dataset(tmp_path, 'badk_labels.pkl')
