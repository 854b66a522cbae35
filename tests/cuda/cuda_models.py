"""Models and batches of the CUDA tests (helpers, no tests here).

The models are the ones this project ships at CPU size: the demo's stage-1/2 configs and the synthetic fine-tuning
configs (3DETR, GroupFree3D, the segmentor), built with random weights; the inputs are synthetic batches.
"""
import importlib.util
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import projects.sam_mtp  # noqa: F401  (registers the modules, installs the point-op dispatch)
import projects.sam_mtp.models.detectors  # noqa: F401  (3DETR)
import projects.sam_mtp.models.heads  # noqa: F401
from helpers.labels import make_collated_batch
from mmdet3d.registry import MODELS
from mmdet3d.structures import Det3DDataSample, PointData

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# The GPU check's benchmark script makes the synthetic detection scenes; reuse them.
_spec = importlib.util.spec_from_file_location('gpu_check_bench', osp.join(ROOT, 'tools', 'gpu_check', 'bench.py'))
gpu_check_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check_bench)
detection_batch = gpu_check_bench.detection_batch

init_default_scope('mmdet3d')

CONFIGS = dict(
    stage1='configs/sam_mtp/demo/sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py',
    stage2='configs/sam_mtp/demo/sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py',
    threedetr='configs/sam_mtp/demo/threedetr_plain-transformer-sam-mtp_1xb2-2e_synthetic-scannet-3d.py',
    groupfree3d='configs/sam_mtp/demo/groupfree3d_plain-transformer-sam-mtp_1xb2-2e_synthetic-scannet-3d.py',
    segmentor='configs/sam_mtp/demo/tokeninterp_plain-transformer-sam-mtp_1xb4-2e_synthetic-scannet-seg.py',
)
MODEL_NAMES = tuple(CONFIGS)


def load_config(name: str) -> Config:
    return Config.fromfile(osp.join(ROOT, CONFIGS[name]))


def build_model(name: str, tmp_dir: str, seed: int = 0):
    """(model on the CPU with random weights, its config); stage 2 gets a random stage-1 teacher checkpoint."""
    cfg = load_config(name)
    torch.manual_seed(seed)
    if name == 'stage2':
        path = osp.join(tmp_dir, 'stage1_random.pth')
        torch.save(dict(state_dict=MODELS.build(cfg.model.teacher).state_dict(), meta={}), path)
        cfg.model.teacher_checkpoint = path
    elif cfg.model.backbone.get('init_cfg'):
        cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    if name == 'stage2':
        model.init_weights()  # loads the teacher
    return model, cfg


def make_batch(name: str, seed: int = 0) -> dict:
    """A small batch in the format the model's data preprocessor takes."""
    if name in ('stage1', 'stage2'):
        cfg = load_config(name)
        dim = cfg.model.projector.out_channels if name == 'stage1' else cfg.model.teacher.projector.out_channels
        return make_collated_batch(seed=seed, region_sizes_per_frame=((120, 90, 70, 40), (100, 80, 30)),
                                   num_unassigned=(40, 60), feature_dim=dim)
    generator = torch.Generator().manual_seed(seed)
    if name in ('threedetr', 'groupfree3d'):
        return detection_batch(2, 1024, 4, generator, load_config(name).model.bbox_head.num_classes)
    return segmentation_batch(2, 1024, load_config(name).model.decode_head.num_classes, generator)


def segmentation_batch(batch: int, num_points: int, num_classes: int, generator) -> dict:
    """Points (N, 7) = xyz, colour in [0, 1], scene-segment id (as the segmentor's pipeline packs them) and a
    semantic label per point; segments are 0.5 m cells, each with one class."""
    points, samples = [], []
    for _ in range(batch):
        xyz = torch.rand(num_points, 3, generator=generator) * 2.0
        cell = (xyz[:, 0] * 2).floor() * 4 + (xyz[:, 1] * 2).floor()
        cell_class = torch.randint(0, num_classes, (16, ), generator=generator)
        colour = torch.rand(num_points, 3, generator=generator)
        points.append(torch.cat([xyz, colour, cell[:, None]], 1))
        sample = Det3DDataSample()
        sample.gt_pts_seg = PointData(pts_semantic_mask=cell_class[cell.long()])
        samples.append(sample)
    return dict(inputs=dict(points=points), data_samples=samples)

