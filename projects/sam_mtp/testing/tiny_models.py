"""Tiny label models with random weights (SAM, a DINOv2-style ViT) and the label-source configs that use them:
CPU tests and toy-size benchmark runs."""
from functools import partial

import torch

# A SAM of one 32-d encoder block on 128-px images (8 x 8 patches) with a one-layer mask decoder.
TINY_SAM_ARCH = dict(encoder_embed_dim=32, encoder_depth=1, encoder_num_heads=2, encoder_global_attn_indexes=(0, ),
                     image_size=128, patch_size=16, prompt_embed_dim=32, window_size=4, decoder_depth=1,
                     decoder_mlp_dim=64, decoder_num_heads=2, iou_head_depth=3, iou_head_hidden_dim=32, mlp_ratio=2,
                     mask_in_chans=4)
TINY_VIT_ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def build_tiny_sam(**overrides):
    """A tiny SAM assembled directly from segment-anything's classes (independently of this project's builder),
    :data:`TINY_SAM_ARCH` with ``overrides``; random weights from torch's global generator."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
    a = dict(TINY_SAM_ARCH, **overrides)
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


def build_tiny_vit():
    """mmpretrain's VisionTransformer at :data:`TINY_VIT_ARCH`, 56-px input, 14-px patches, feature maps out."""
    from mmpretrain.models import VisionTransformer
    return VisionTransformer(arch=dict(TINY_VIT_ARCH), img_size=56, patch_size=14, layer_scale_init_value=1e-5,
                             out_type='featmap', final_norm=True)


def tiny_sam_source_cfg(checkpoint, **kwargs):
    """``SAMAutomaticMaskSource`` config of the tiny SAM on the CPU: 4 x 4 prompt points, every mask kept."""
    cfg = dict(type='SAMAutomaticMaskSource', checkpoint=checkpoint, model_type='custom', arch=dict(TINY_SAM_ARCH),
               device='cpu', points_per_side=4, points_per_batch=16, pred_iou_thresh=0.0, stability_score_thresh=0.0,
               crop_n_layers=0, min_mask_region_area=0)
    cfg.update(kwargs)
    return cfg


def tiny_vit_source_cfg(checkpoint, **kwargs):
    """``DINOv2FeatureSource`` config of the tiny ViT on the CPU (56-px input)."""
    cfg = dict(type='DINOv2FeatureSource', checkpoint=checkpoint, arch=dict(TINY_VIT_ARCH), patch_size=14,
               img_size=56, short_side=56, device='cpu')
    cfg.update(kwargs)
    return cfg
