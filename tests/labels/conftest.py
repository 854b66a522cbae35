"""Shared fixtures of the label tests: a tiny synthetic ScanNet root and tiny SAM / ViT checkpoints built from
segment-anything's and mmpretrain's own classes (random weights, saved to temporary files)."""
import os
import shutil
from functools import partial

import numpy as np
import pytest
import torch

TINY_SAM_ARCH = dict(encoder_embed_dim=32, encoder_depth=1, encoder_num_heads=2, encoder_global_attn_indexes=(0, ),
                     image_size=128, patch_size=16, prompt_embed_dim=32, window_size=4, decoder_depth=1,
                     decoder_mlp_dim=64, decoder_num_heads=2, iou_head_depth=3, iou_head_hidden_dim=32, mlp_ratio=2,
                     mask_in_chans=4)
TINY_VIT_ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory):
    """Two scenes x 4 frames (ids 0, 25, 50, 75) of 96x72 colour and 64x48 depth, noise-free depth."""
    from projects.sam_mtp.datasets.synthetic import write_synthetic_scannet
    root = str(tmp_path_factory.mktemp('synthetic') / 'scannet')
    write_synthetic_scannet(root, 'train:2', seed=3, points_per_scene=6000, frames_per_scene=4,
                            image_size=(96, 72), depth_size=(64, 48), depth_noise=0.0, depth_dropout=0.0)
    return root


@pytest.fixture
def frames_copy(synthetic_root, tmp_path):
    """A private copy of the synthetic frame folders that a test may damage."""
    dst = str(tmp_path / 'posed_images')
    shutil.copytree(os.path.join(synthetic_root, 'posed_images'), dst)
    return dst


def build_tiny_sam():
    """A tiny SAM assembled directly from segment-anything's classes (independently of our builder)."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
    a = TINY_SAM_ARCH
    grid = a['image_size'] // a['patch_size']
    encoder = ImageEncoderViT(
        depth=a['encoder_depth'], embed_dim=a['encoder_embed_dim'], img_size=a['image_size'], mlp_ratio=a['mlp_ratio'],
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=a['encoder_num_heads'],
        patch_size=a['patch_size'], qkv_bias=True, use_rel_pos=True,
        global_attn_indexes=a['encoder_global_attn_indexes'], window_size=a['window_size'],
        out_chans=a['prompt_embed_dim'])
    prompt = PromptEncoder(embed_dim=a['prompt_embed_dim'], image_embedding_size=(grid, grid),
                           input_image_size=(a['image_size'], a['image_size']), mask_in_chans=a['mask_in_chans'])
    decoder = MaskDecoder(num_multimask_outputs=3,
                          transformer=TwoWayTransformer(depth=a['decoder_depth'], embedding_dim=a['prompt_embed_dim'],
                                                        mlp_dim=a['decoder_mlp_dim'],
                                                        num_heads=a['decoder_num_heads']),
                          transformer_dim=a['prompt_embed_dim'], iou_head_depth=a['iou_head_depth'],
                          iou_head_hidden_dim=a['iou_head_hidden_dim'])
    return Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder,
               pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375])


@pytest.fixture(scope='session')
def tiny_sam_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('sam') / 'tiny_sam.pth')
    torch.save(build_tiny_sam().state_dict(), path)
    return path


def build_tiny_vit():
    from mmpretrain.models import VisionTransformer
    return VisionTransformer(arch=dict(TINY_VIT_ARCH), img_size=56, patch_size=14, layer_scale_init_value=1e-5,
                             out_type='featmap', final_norm=True)


@pytest.fixture(scope='session')
def tiny_vit_checkpoint(tmp_path_factory):
    """An mmpretrain-style classifier checkpoint: ``state_dict`` with ``backbone.*`` keys plus ``meta``."""
    torch.manual_seed(1)
    model = build_tiny_vit()
    torch.nn.init.normal_(model.pos_embed, std=0.02)
    path = str(tmp_path_factory.mktemp('vit') / 'tiny_vit.pth')
    state = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    torch.save(dict(state_dict=state, meta=dict(note='tiny test model')), path)
    return path


def tiny_sam_source_cfg(checkpoint, **kwargs):
    cfg = dict(type='SAMAutomaticMaskSource', checkpoint=checkpoint, model_type='custom', arch=dict(TINY_SAM_ARCH),
               device='cpu', points_per_side=4, points_per_batch=16, pred_iou_thresh=0.0, stability_score_thresh=0.0,
               crop_n_layers=0, min_mask_region_area=0)
    cfg.update(kwargs)
    return cfg


def tiny_vit_source_cfg(checkpoint, **kwargs):
    cfg = dict(type='DINOv2FeatureSource', checkpoint=checkpoint, arch=dict(TINY_VIT_ARCH), patch_size=14,
               img_size=56, short_side=56, device='cpu')
    cfg.update(kwargs)
    return cfg


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(0)
    torch.manual_seed(0)
