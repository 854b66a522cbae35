"""tools/test.py --show-dir's renderer (engine/show.py): which boxes and masks of a test sample are drawn, and
that the PNG shows them, without open3d."""
import numpy as np
import pytest
import torch
from PIL import Image

from projects.sam_mtp.engine import show
from projects.sam_mtp.engine.show import PointCloudShowHook, render_points_png


def _box_corners(x0, y0, x1, y1, z0=0.0, z1=1.0):
    """(8, 3) corners in mmdet3d's order (bottom face z0 at corners 0, 3, 7, 4), written out by hand."""
    return np.array([[x0, y0, z0], [x0, y0, z1], [x0, y1, z1], [x0, y1, z0],
                     [x1, y0, z0], [x1, y0, z1], [x1, y1, z1], [x1, y1, z0]], dtype=np.float32)


def _red(image):
    return (image[..., 0] > 180) & (image[..., 1] < 90) & (image[..., 2] < 90)


def _green(image):
    return (image[..., 1] > 120) & (image[..., 0] < 100) & (image[..., 2] < 100)


def test_detection_picture_draws_prediction_and_ground_truth_footprints(tmp_path):
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 4, size=(500, 3)).astype(np.float32)
    box = _box_corners(1, 1, 2, 3)[None]
    render_points_png(str(tmp_path / 'none.png'), points)
    render_points_png(str(tmp_path / 'pred.png'), points, pred_corners=box, pred_labels=np.array([0]),
                      class_names=['chair'])
    render_points_png(str(tmp_path / 'gt.png'), points, gt_corners=box)
    none, pred, gt = (np.asarray(Image.open(tmp_path / f'{n}.png').convert('RGB')) for n in ('none', 'pred', 'gt'))
    assert none.shape == pred.shape == (600, 600, 3)
    assert _red(none).sum() == 0 and _green(none).sum() == 0  # the points alone are grey
    assert _red(pred).sum() > 100 and _green(pred).sum() == 0
    assert _green(gt).sum() > 100 and _red(gt).sum() == 0
    # The footprint is a 1 m x 2 m rectangle: its red outline is twice as tall as wide (equal axes).
    rows, cols = np.nonzero(_red(pred))
    height, width = rows.max() - rows.min(), cols.max() - cols.min()
    assert height / width == pytest.approx(2.0, rel=0.1)


def test_segmentation_picture_has_a_panel_per_mask_in_class_colours(tmp_path):
    points = np.stack([np.linspace(0, 3, 300), np.linspace(0, 1, 300), np.zeros(300)], axis=1)
    labels = (np.arange(300) // 100).astype(np.int64)  # three classes
    render_points_png(str(tmp_path / 'seg.png'), points, gt_seg=labels, pred_seg=labels,
                      class_names=['a', 'b', 'c'])
    image = np.asarray(Image.open(tmp_path / 'seg.png').convert('RGB'))
    assert image.shape == (600, 1200, 3)  # ground truth and prediction side by side
    from matplotlib import colormaps
    present = np.unique(image.reshape(-1, 3), axis=0).astype(int)
    for i in range(3):  # tab20's first three colours, one per class
        colour = np.round(np.asarray(colormaps['tab20'](i)[:3]) * 255)
        assert np.abs(present - colour).max(axis=1).min() <= 3, i
    # An id outside the classes is grey, not a class colour.
    render_points_png(str(tmp_path / 'unknown.png'), points, pred_seg=np.full(300, 7), class_names=['a', 'b', 'c'])
    image = np.asarray(Image.open(tmp_path / 'unknown.png').convert('RGB'))
    assert image.shape == (600, 600, 3)
    present = np.unique(image.reshape(-1, 3), axis=0).astype(int)
    assert np.abs(present - 153).max(axis=1).min() <= 3  # 0.6 grey
    for i in range(3):
        colour = np.round(np.asarray(colormaps['tab20'](i)[:3]) * 255)
        assert np.abs(present - colour).max(axis=1).min() > 10


class _Sample:
    """The parts of mmdet3d's Det3DDataSample the hook reads."""

    def __init__(self, metainfo, **fields):
        self.metainfo = metainfo
        self._fields = fields

    def get(self, key, default=None):
        return self._fields.get(key, default)


class _Instances(dict):
    __getattr__ = dict.__getitem__


class _Boxes:
    def __init__(self, corners):
        self.corners = torch.as_tensor(corners)


class _Runner:
    def __init__(self, classes):
        self.test_dataloader = type('Loader', (), {'dataset': type('Set', (), {'metainfo': {'classes': classes}})()})()


def test_hook_draws_boxes_above_the_score_threshold_and_masks_of_the_seen_points(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(show, 'render_points_png', lambda out, pts, title='', **kw: calls.append((out, pts, kw)))
    corners = np.stack([_box_corners(0, 0, 1, 1), _box_corners(2, 2, 3, 3), _box_corners(1, 1, 2, 2)])
    pred = _Instances(bboxes_3d=_Boxes(corners), scores_3d=torch.tensor([0.05, 0.5, 0.1]),
                      labels_3d=torch.tensor([2, 1, 0]))
    gt = _Boxes(corners[:1])
    samples = [_Sample({'lidar_path': 'data/points/scene0007_00.bin'}, pred_instances_3d=pred,
                       eval_ann_info={'gt_bboxes_3d': gt}), _Sample({}, pred_instances_3d=pred)]
    points = [torch.rand(20, 4), torch.rand(10, 4)]
    hook = PointCloudShowHook(str(tmp_path / 'show'), task='lidar_det', score_thr=0.1)
    hook.before_test(_Runner(['a', 'b', 'c']))
    assert (tmp_path / 'show').is_dir()
    hook.after_test_iter(_Runner(['a', 'b', 'c']), 0, dict(inputs=dict(points=points)), samples)
    assert [c[0] for c in calls] == [str(tmp_path / 'show' / 'scene0007_00.png'), str(tmp_path / 'show' / '000001.png')]
    out, pts, kwargs = calls[0]
    np.testing.assert_array_equal(pts, points[0].numpy())
    # Scores 0.5 and 0.1 reach the threshold 0.1, 0.05 does not.
    np.testing.assert_array_equal(kwargs['pred_corners'], corners[[1, 2]])
    np.testing.assert_array_equal(kwargs['pred_labels'], [1, 0])
    np.testing.assert_array_equal(kwargs['gt_corners'], corners[:1])
    assert kwargs['class_names'] == ['a', 'b', 'c'] and calls[1][2]['gt_corners'] is None

    calls.clear()
    seg_hook = PointCloudShowHook(str(tmp_path / 'seg'), task='lidar_seg')
    pred_mask = _Instances(pts_semantic_mask=torch.arange(20) % 3)
    samples = [_Sample({'lidar_path': 'a.bin'}, pred_pts_seg=pred_mask,
                       eval_ann_info={'pts_semantic_mask': np.zeros(20, np.int64)}),
               # ground truth of all the scene's points, not of the 20 the model saw: not drawn
               _Sample({'lidar_path': 'b.bin'}, pred_pts_seg=pred_mask,
                       eval_ann_info={'pts_semantic_mask': np.zeros(50, np.int64)})]
    seg_hook.after_test_iter(_Runner(['a', 'b', 'c']), 0, dict(inputs=dict(points=[points[0], points[0]])), samples)
    np.testing.assert_array_equal(calls[0][2]['pred_seg'], np.arange(20) % 3)
    np.testing.assert_array_equal(calls[0][2]['gt_seg'], np.zeros(20))
    assert calls[1][2]['gt_seg'] is None and calls[1][2]['pred_seg'] is not None
    with pytest.raises(ValueError, match='task must be one of'):
        PointCloudShowHook(str(tmp_path), task='mono_det')
