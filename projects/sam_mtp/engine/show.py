"""``tools/test.py --show-dir DIR`` without open3d: one top-down PNG per test sample, drawn with Matplotlib.

mmdet3d's ``Det3DVisualizationHook`` draws point clouds with open3d, which this stack does not install (no wheel
for every platform, and it needs a display for ``--show``). :class:`PointCloudShowHook` draws what a user needs
to judge a model: the sample's input points seen from above (x right, y up, metres), and

* ``lidar_det``: the ground-truth boxes (green) and the predicted boxes scoring at least ``score_thr`` (red,
  with their class), as their footprints (the bottom face of each box);
* ``lidar_seg``: two panels, the points coloured by their ground-truth class and by the predicted class.

The points are the ones the model saw (after the test pipeline: ScanNet's axis alignment, sampling), so points
and boxes share one frame. Each PNG is named after the sample's point file (``scene0000_00.png``), or its index.
"""
import os
import os.path as osp
from typing import Optional, Sequence

import numpy as np
from mmdet3d.registry import HOOKS
from mmengine.hooks import Hook

SHOW_TASKS = ('lidar_det', 'lidar_seg')
# Box footprint: mmdet3d's corner order puts the bottom face (z0) at corners 0, 3, 7, 4.
_BOTTOM_FACE = (0, 3, 7, 4, 0)
_MAX_DRAWN_POINTS = 50000


def _class_colors(num_classes: int) -> np.ndarray:
    """(num_classes, 3) distinct colours in [0, 1] (tab20, repeated)."""
    from matplotlib import colormaps
    cmap = colormaps['tab20']
    return np.asarray([cmap(i % 20)[:3] for i in range(max(num_classes, 1))])


def _footprints(corners: Optional[np.ndarray]) -> np.ndarray:
    """(K, 5, 2) closed xy polygons of the boxes' bottom faces from their (K, 8, 3) corners."""
    if corners is None or len(corners) == 0:
        return np.zeros((0, len(_BOTTOM_FACE), 2))
    return np.asarray(corners)[:, _BOTTOM_FACE, :2]


def render_points_png(out_file: str, points: np.ndarray, title: str = '', *,
                      pred_corners: Optional[np.ndarray] = None, pred_labels: Optional[np.ndarray] = None,
                      gt_corners: Optional[np.ndarray] = None, pred_seg: Optional[np.ndarray] = None,
                      gt_seg: Optional[np.ndarray] = None, class_names: Sequence[str] = ()) -> None:
    """Write a top-down picture of ``points`` (N, >=3) with box footprints (detection) or class colours
    (segmentation: one panel per given mask, each (N,) class ids; ids outside the classes are grey)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = np.asarray(points, dtype=np.float32)
    xy = points[:, :2]
    keep = np.arange(len(xy))
    if len(keep) > _MAX_DRAWN_POINTS:  # a readable picture needs no more; evenly spaced, deterministic
        keep = np.linspace(0, len(xy) - 1, _MAX_DRAWN_POINTS).astype(np.int64)
    panels = [(name, mask) for name, mask in (('ground truth', gt_seg), ('prediction', pred_seg)) if mask is not None]
    fig = Figure(figsize=(6 * max(len(panels), 1), 6), dpi=100)
    FigureCanvasAgg(fig)
    num_classes = max(len(class_names), 1)
    palette = _class_colors(num_classes)
    if panels:
        for i, (name, mask) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), i + 1)
            mask = np.asarray(mask).astype(np.int64)[keep]
            colors = np.full((len(keep), 3), 0.6)
            known = (mask >= 0) & (mask < len(palette))
            colors[known] = palette[mask[known]]
            ax.scatter(xy[keep, 0], xy[keep, 1], c=colors, s=4, linewidths=0)
            ax.set_title(f'{title} {name}'.strip(), fontsize=9)
            ax.set_aspect('equal')
    else:
        ax = fig.add_subplot(1, 1, 1)
        # Grey points, darker with height (floor light, furniture tops dark), so red and green stay the boxes'.
        height = points[keep, 2] if points.shape[1] > 2 else np.zeros(len(keep))
        span = max(float(np.ptp(height)), 1e-6) if len(height) else 1.0
        level = 0.75 - 0.6 * (height - (height.min() if len(height) else 0.0)) / span
        ax.scatter(xy[keep, 0], xy[keep, 1], c=np.repeat(level[:, None], 3, axis=1), s=2, linewidths=0)
        for poly in _footprints(gt_corners):
            ax.plot(poly[:, 0], poly[:, 1], color='tab:green', linewidth=1.2)
        pred_labels = np.asarray(pred_labels if pred_labels is not None else [], dtype=np.int64)
        for k, poly in enumerate(_footprints(pred_corners)):
            ax.plot(poly[:, 0], poly[:, 1], color='tab:red', linewidth=1.0)
            if k < len(pred_labels) and 0 <= pred_labels[k] < len(class_names):
                ax.text(poly[0, 0], poly[0, 1], class_names[pred_labels[k]], color='tab:red', fontsize=6)
        legend = ' (green: ground truth, red: prediction)' if gt_corners is not None or pred_corners is not None \
            else ''
        ax.set_title(f'{title}{legend}'.strip(), fontsize=9)
        ax.set_aspect('equal')
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file)


def _numpy(value) -> Optional[np.ndarray]:
    if value is None:
        return None
    if hasattr(value, 'detach'):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _corners(boxes) -> Optional[np.ndarray]:
    """(K, 8, 3) corners of mmdet3d boxes (any BaseInstance3DBoxes), None when there are none."""
    if boxes is None or not hasattr(boxes, 'corners'):
        return None
    return _numpy(boxes.corners)


@HOOKS.register_module()
class PointCloudShowHook(Hook):
    """Write one PNG per test sample into ``out_dir`` (see the module docstring).

    Args:
        out_dir (str): folder of the pictures, created if needed (relative paths: to the working directory).
        task (str): 'lidar_det' or 'lidar_seg'.
        score_thr (float): predicted boxes scoring below it are not drawn.
    """

    priority = 'LOW'

    def __init__(self, out_dir: str, task: str = 'lidar_det', score_thr: float = 0.1):
        if task not in SHOW_TASKS:
            raise ValueError(f'PointCloudShowHook: task must be one of {SHOW_TASKS}, got {task!r}')
        self.out_dir = out_dir
        self.task = task
        self.score_thr = score_thr
        self._count = 0

    def before_test(self, runner) -> None:
        os.makedirs(self.out_dir, exist_ok=True)

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        points_list = (data_batch or {}).get('inputs', {}).get('points', None)
        dataset = getattr(runner.test_dataloader, 'dataset', None)
        class_names = list(getattr(dataset, 'metainfo', {}).get('classes', ()))
        for i, sample in enumerate(outputs or ()):
            self._count += 1
            if points_list is None or i >= len(points_list):
                continue
            points = _numpy(points_list[i])
            path = sample.metainfo.get('lidar_path', None)
            name = osp.splitext(osp.basename(path))[0] if path else f'{self._count - 1:06d}'
            eval_ann = sample.get('eval_ann_info', None) or {}
            kwargs = dict(class_names=class_names)
            if self.task == 'lidar_det':
                pred = sample.get('pred_instances_3d', None)
                if pred is not None and 'bboxes_3d' in pred:
                    scores = _numpy(pred.scores_3d)
                    keep = scores >= self.score_thr
                    corners = _corners(pred.bboxes_3d)
                    kwargs.update(pred_corners=corners[keep] if corners is not None else None,
                                  pred_labels=_numpy(pred.labels_3d)[keep])
                kwargs.update(gt_corners=_corners(eval_ann.get('gt_bboxes_3d', None)))
            else:
                pred = sample.get('pred_pts_seg', None)
                pred_seg = _numpy(pred.pts_semantic_mask) if pred is not None else None
                gt_seg = _numpy(eval_ann.get('pts_semantic_mask', None))
                # A mask of another length (e.g. the ground truth of all the scene's points) cannot be drawn
                # on the points the model saw.
                kwargs.update(pred_seg=pred_seg if pred_seg is not None and len(pred_seg) == len(points) else None,
                              gt_seg=gt_seg if gt_seg is not None and len(gt_seg) == len(points) else None)
            render_points_png(osp.join(self.out_dir, f'{name}.png'), points, name, **kwargs)
