"""Synthetic indoor scenes in mmdet3d's model format, for detection and segmentation (tests, the point-op and GPU
benchmarks): ``Det3DDataSample`` targets, random box scenes with scene segments, a room with points on its
surfaces, and segmentation batches. Coordinates are metres in the depth frame (z up)."""
from typing import Optional

import numpy as np
import torch
from mmdet3d.structures import DepthInstance3DBoxes, Det3DDataSample, PointData
from mmengine.structures import InstanceData


def det3d_sample(boxes=None,
                 labels: Optional[torch.Tensor] = None,
                 instance_mask: Optional[torch.Tensor] = None,
                 semantic_mask: Optional[torch.Tensor] = None,
                 **metainfo) -> Det3DDataSample:
    """A data sample with ground truth: ``boxes`` (``DepthInstance3DBoxes``, or a (K, 7) tensor of axis-aligned
    gravity-centre boxes ``x, y, z, dx, dy, dz, yaw``) and their ``labels``, and/or per-point instance / semantic
    masks. With boxes, ``box_type_3d`` is set in the metainfo (the detectors' heads read it)."""
    if boxes is not None:
        metainfo = dict(box_type_3d=DepthInstance3DBoxes, **metainfo)
    sample = Det3DDataSample(metainfo=metainfo)
    if boxes is not None:
        if not isinstance(boxes, DepthInstance3DBoxes):
            boxes = DepthInstance3DBoxes(boxes, box_dim=7, with_yaw=False, origin=(0.5, 0.5, 0.5))
        sample.gt_instances_3d = InstanceData(bboxes_3d=boxes, labels_3d=labels)
    masks = dict(pts_instance_mask=instance_mask, pts_semantic_mask=semantic_mask)
    if any(m is not None for m in masks.values()):
        sample.gt_pts_seg = PointData(**{k: m for k, m in masks.items() if m is not None})
    return sample


def detection_batch(batch: int, num_points: int, num_boxes: int, generator: torch.Generator, num_classes: int,
                    num_segments: Optional[int] = None) -> dict:
    """Synthetic ScanNet-like scenes in mmdet3d's format: points (N, 4) = xyz + scene-segment id, axis-aligned
    boxes with labels, instance / semantic masks (GroupFree3D's targets). Segments: one per box and per 1 m
    floor cell, or with ``num_segments`` that many cells of nearest seed points (seeds drawn from the scene's
    points); 10 % of the points in none (-1) either way."""
    points, samples = [], []
    for _ in range(batch):
        size = torch.rand(num_boxes, 3, generator=generator) * 1.5 + 0.3
        centre = torch.rand(num_boxes, 3, generator=generator) * torch.tensor([6., 6., 0.]) + 1.
        centre[:, 2] = size[:, 2] / 2
        num_floor = num_points * 3 // 10
        box_of = torch.randint(0, num_boxes, (num_points - num_floor, ), generator=generator)
        inside = centre[box_of] + (torch.rand(len(box_of), 3, generator=generator) - 0.5) * size[box_of]
        floor = torch.rand(num_floor, 3, generator=generator) * torch.tensor([8., 8., 0.])
        xyz = torch.cat([floor, inside])
        if num_segments is None:
            cells = (floor[:, 0].floor() * 8 + floor[:, 1].floor()).long()
            segment = torch.cat([num_boxes + cells, box_of])
        else:
            seeds = xyz[torch.randperm(num_points, generator=generator)[:num_segments]]
            segment = torch.cdist(xyz, seeds).argmin(dim=1)
        segment[torch.rand(num_points, generator=generator) < 0.1] = -1
        labels = torch.randint(0, num_classes, (num_boxes, ), generator=generator)
        instance = torch.cat([torch.zeros(num_floor, dtype=torch.long), box_of + 1])
        semantic = torch.cat([torch.full((num_floor, ), num_classes, dtype=torch.long), labels[box_of]])
        boxes = torch.cat([centre, size, torch.zeros(num_boxes, 1)], 1)
        samples.append(det3d_sample(boxes, labels, instance_mask=instance, semantic_mask=semantic))
        points.append(torch.cat([xyz, segment[:, None].float()], 1))
    return dict(inputs=dict(points=points), data_samples=samples)


def room_scene(num_points: int, seed: int, num_boxes: int = 12, num_classes: int = 18) -> dict:
    """A ScanNet-like room: points on the floor, four walls (8 x 8 x 3 m) and the faces of furniture boxes.

    Returns:
        dict: ``xyz`` (N, 3) float32, ``segment`` (N,) int64 (one per surface group, -1 for 10 % of points),
        ``instance`` (N,) (box k + 1, 0 elsewhere), ``semantic`` (N,) (the box's class, ``num_classes``
        elsewhere), ``boxes`` (K, 7) gravity-centre axis-aligned boxes and their ``labels``.
    """
    rng = np.random.default_rng(seed)
    size = np.array([8.0, 8.0, 3.0])
    centre_xy = rng.uniform(1.0, 7.0, (num_boxes, 2))
    dims = np.c_[rng.uniform(0.4, 2.0, (num_boxes, 2)), rng.uniform(0.4, 1.5, num_boxes)]
    lows = np.c_[centre_xy - dims[:, :2] / 2, np.zeros(num_boxes)]
    # Planar patches: (origin, edge u, edge v, instance id).
    patches = [(np.zeros(3), np.array([8.0, 0, 0]), np.array([0, 8.0, 0]), 0)]
    for wall in range(4):
        along = np.array([8.0, 0, 0]) if wall % 2 == 0 else np.array([0, 8.0, 0])
        origin = np.zeros(3) if wall < 2 else (np.array([0, 8.0, 0]) if wall == 2 else np.array([8.0, 0, 0]))
        patches.append((origin, along, np.array([0, 0, 3.0]), 0))
    for k in range(num_boxes):
        dx, dy, dz = np.diag(dims[k])
        low = lows[k]
        patches += [(low + dz, dx, dy, k + 1), (low, dx, dz, k + 1), (low + dy, dx, dz, k + 1),
                    (low, dy, dz, k + 1), (low + dx, dy, dz, k + 1)]
    areas = np.array([np.linalg.norm(np.cross(u, v)) for _, u, v, _ in patches])
    counts = rng.multinomial(num_points, areas / areas.sum())
    xyz, instance, group = [], [], []
    for p, ((origin, u, v, inst), count) in enumerate(zip(patches, counts)):
        st = rng.random((count, 2))
        xyz.append(origin + st[:, :1] * u + st[:, 1:] * v)
        instance.append(np.full(count, inst))
        group.append(np.full(count, p if inst == 0 else len(patches) + inst))
    xyz = np.clip(np.concatenate(xyz) + rng.normal(0, 0.005, (num_points, 3)), 0, size).astype(np.float32)
    instance, group = np.concatenate(instance), np.concatenate(group)
    segment = np.unique(group, return_inverse=True)[1]
    segment[rng.random(num_points) < 0.1] = -1
    labels = rng.integers(0, num_classes, num_boxes)
    semantic = np.where(instance > 0, labels[np.maximum(instance - 1, 0)], num_classes)
    order = rng.permutation(num_points)
    boxes = np.c_[lows[:, :2] + dims[:, :2] / 2, dims[:, 2] / 2, dims, np.zeros(num_boxes)].astype(np.float32)
    return dict(xyz=xyz[order], segment=segment[order], instance=instance[order], semantic=semantic[order],
                boxes=boxes, labels=labels)


def segmentation_batch(batch: int, num_points: int, num_classes: int, generator: torch.Generator) -> dict:
    """Points (N, 7) = xyz, colour in [0, 1], scene-segment id (as the segmentor's pipeline packs them) and a
    semantic label per point; segments are 0.5 m cells, each with one class."""
    points, samples = [], []
    for _ in range(batch):
        xyz = torch.rand(num_points, 3, generator=generator) * 2.0
        cell = (xyz[:, 0] * 2).floor() * 4 + (xyz[:, 1] * 2).floor()
        cell_class = torch.randint(0, num_classes, (16, ), generator=generator)
        colour = torch.rand(num_points, 3, generator=generator)
        points.append(torch.cat([xyz, colour, cell[:, None]], 1))
        samples.append(det3d_sample(semantic_mask=cell_class[cell.long()]))
    return dict(inputs=dict(points=points), data_samples=samples)

