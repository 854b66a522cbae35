"""Shared tiny fixtures of the 3DETR tests (no tests here): a token backbone stub, configs, synthetic scenes."""
import math

import numpy as np
import torch
from mmdet3d.registry import MODELS
from mmdet3d.structures import DepthInstance3DBoxes
from mmengine.model import BaseModule
from mmengine.registry import init_default_scope
from torch import nn

import projects.sam_mtp.models.detectors  # noqa: F401  (registers ThreeDETR)
import projects.sam_mtp.models.heads  # noqa: F401  (registers the head, costs, loss)
from projects.sam_mtp.testing import det3d_sample as data_sample  # noqa: F401  (the 3DETR tests import it here)

# Configs name mmdet3d modules without a scope prefix, as under the runner.
init_default_scope('mmdet3d')

NUM_CLASSES = 3


@MODELS.register_module(force=True)
class ThreeDETRTestTokenBackbone(BaseModule):
    """Tokens are the first ``num_tokens`` input points, features a per-token MLP of their coordinates.

    The last ``num_padded`` tokens are flagged as padding (``padding_mask``), like a SAM-token backbone
    that pads scenes to a common token count.
    """

    def __init__(self, num_tokens: int = 64, channels: int = 32, num_padded: int = 0) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.num_padded = num_padded
        self.embed = nn.Sequential(nn.Linear(3, channels), nn.ReLU(), nn.Linear(channels, channels))

    def forward(self, points):
        xyz = points[:, :self.num_tokens, :3].contiguous()
        out = dict(
            fp_xyz=[xyz],
            fp_features=[self.embed(xyz).transpose(1, 2).contiguous()],
            fp_indices=[torch.arange(self.num_tokens, device=points.device).expand(points.shape[0], -1)])
        if self.num_padded:
            mask = torch.zeros(points.shape[0], self.num_tokens, dtype=torch.bool, device=points.device)
            mask[:, self.num_tokens - self.num_padded:] = True
            out['padding_mask'] = mask
        return out


def head_cfg(**overrides):
    cfg = dict(
        type='ThreeDETRHead', num_classes=NUM_CLASSES, in_channels=32, num_queries=16, embed_dims=32,
        num_decoder_layers=3, num_heads=2, feedforward_channels=32, mlp_channels=(32, 32), dropout=0.0,
        mlp_dropout=0.0)
    cfg.update(overrides)
    return cfg


SCANNET_COSTS = [dict(type='mmdet.ClassificationCost', weight=1.0), dict(type='BBox3DGIoUCost', weight=2.0)]


def detector_cfg(backbone=None, test_cfg=None, **head_overrides):
    return dict(
        type='ThreeDETR',
        data_preprocessor=dict(type='Det3DDataPreprocessor'),
        backbone=backbone or dict(type='ThreeDETRTestTokenBackbone', num_tokens=64, channels=32),
        bbox_head=head_cfg(**head_overrides),
        train_cfg=dict(assigner=dict(type='mmdet.HungarianAssigner', match_costs=SCANNET_COSTS)),
        test_cfg=test_cfg or dict(empty_box_min_points=0, score_thr=0.0))


# Gravity-centre boxes (x, y, z, dx, dy, dz, yaw) and labels of the synthetic room.
SCENE_BOXES = np.array([[1.0, 1.0, 0.5, 0.8, 0.6, 1.0, 0.0],
                        [2.8, 1.4, 0.4, 1.0, 0.8, 0.8, 0.0],
                        [1.8, 3.0, 0.3, 0.6, 1.2, 0.6, 0.0]], dtype=np.float32)
SCENE_LABELS = np.array([0, 1, 2])


def synthetic_scene(seed: int, num_points: int = 1024, yaw: bool = False):
    """A 4 m x 4 m floor with three boxes filled with points; points shuffled; returns points, boxes, labels."""
    rng = np.random.default_rng(seed)
    boxes = SCENE_BOXES.copy()
    if yaw:
        boxes[:, 6] = rng.uniform(-math.pi, math.pi, len(boxes))
    num_floor = num_points // 4
    floor = np.c_[rng.uniform(0, 4, (num_floor, 2)), np.zeros(num_floor)]
    per_box = np.array_split(np.arange(num_points - num_floor), len(boxes))
    parts = [floor]
    for b, idx in zip(boxes, per_box):
        local = (rng.uniform(-0.5, 0.5, (len(idx), 3)) * b[3:6])
        c, s = math.cos(b[6]), math.sin(b[6])
        local[:, :2] = local[:, :2] @ np.array([[c, s], [-s, c]])
        parts.append(local + b[:3])
    points = np.concatenate(parts).astype(np.float32)
    points = points[rng.permutation(len(points))]
    gt_boxes = DepthInstance3DBoxes(torch.from_numpy(boxes), box_dim=7, with_yaw=yaw, origin=(0.5, 0.5, 0.5))
    return torch.from_numpy(points), gt_boxes, torch.from_numpy(SCENE_LABELS)


def batch(seeds, yaw=False, num_points=1024):
    points, samples = [], []
    for seed in seeds:
        p, boxes, labels = synthetic_scene(seed, num_points=num_points, yaw=yaw)
        points.append(p)
        samples.append(data_sample(boxes, labels))
    return dict(inputs=dict(points=points), data_samples=samples)
