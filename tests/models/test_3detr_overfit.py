"""A tiny ThreeDETR must over-fit one synthetic scene: proves matcher, box parametrisation and losses agree."""
import torch
from mmdet3d.registry import MODELS
from test_3detr_helpers import batch, detector_cfg

from projects.sam_mtp.models.heads import iou_3d


def gravity_boxes(boxes):
    return torch.cat([boxes.gravity_center, boxes.dims, boxes.yaw[:, None]], dim=1)


def test_tiny_threedetr_overfits_one_scene():
    # Tiny matrices: one thread avoids oversubscribing shared CPUs (several times faster here).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _overfit_and_check()
    finally:
        torch.set_num_threads(threads)


def _overfit_and_check():
    torch.manual_seed(0)
    model = MODELS.build(detector_cfg(test_cfg=dict(empty_box_min_points=0, per_class_proposal=False,
                                                    score_thr=0.5, nms_thr=0.25)))
    data = model.data_preprocessor(batch([0]), training=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    totals = []
    for _ in range(150):
        losses = model(**data, mode='loss')
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(total.item())
    assert totals[-1] < 0.25 * totals[0], totals[::25]

    model.eval()
    with torch.no_grad():
        pred = model(**model.data_preprocessor(batch([0]), training=False), mode='predict')[0].pred_instances_3d
    gt = data['data_samples'][0].gt_instances_3d
    ious = iou_3d(gravity_boxes(gt.bboxes_3d), gravity_boxes(pred.bboxes_3d), rotated=False)  # (gt, pred)
    same_label = gt.labels_3d[:, None] == pred.labels_3d[None]
    best = torch.where(same_label, ious, torch.zeros_like(ious)).max(dim=1).values
    # Every object is found with its class and a tight box, and there are few confident extras.
    assert best.min() > 0.7, best
    assert len(pred.scores_3d) <= 6, pred
