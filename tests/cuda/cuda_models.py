"""Models and batches of the CUDA tests (helpers, no tests here).

The models are the ones this project ships at CPU size: the demo's stage-1/2 configs and the synthetic fine-tuning
configs (3DETR, GroupFree3D, the segmentor), built with random weights; the inputs are synthetic batches.
"""
import os.path as osp

import torch
from mmdet3d.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import projects.sam_mtp  # noqa: F401  (registers the modules, installs the point-op dispatch)
import projects.sam_mtp.models.detectors  # noqa: F401  (3DETR)
import projects.sam_mtp.models.heads  # noqa: F401
from projects.sam_mtp.testing import detection_batch, make_collated_batch, segmentation_batch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

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
