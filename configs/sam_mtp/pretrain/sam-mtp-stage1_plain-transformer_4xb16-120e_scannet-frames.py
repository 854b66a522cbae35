# SAM-MTP stage 1: region-level dense distillation (paper §3.2-3.4) on ScanNet frames.
# 4 GPUs x 16 frames = total batch 64 (paper). Launch:
#   bash tools/dist_train.sh configs/sam_mtp/pretrain/sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py 4
# Outputs work_dirs/sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames/epoch_120.pth, the teacher of
# configs/sam_mtp/pretrain/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames.py.
_base_ = [
    '../_base_/pretrain_runtime.py',
    '../_base_/datasets/scannet-frames.py',
    '../_base_/models/plain-point-transformer.py',
    '../_base_/schedules/pretrain_adamw-120e.py',
    '../_base_/schedules/warmup-cosine.py',
]

feature_dim = 768  # DINOv2 ViT-B region targets; must equal the label split's metainfo feature_dim
embed_dims = _base_.plain_point_transformer['embed_dims']

model = dict(
    type='SamMtpDistiller',
    data_preprocessor=dict(type='BaseDataPreprocessor'),
    # One token per SAM region (>= 16 points), 128 points each, with no cap on their number (max_tokens=None,
    # the tokenizer's default: the paper's one token per region); points outside every region become at most
    # 32 target-free fallback tokens. docs/pretraining.md, "Token budget".
    tokenizer=dict(
        type='SAMGuidedTokenizer',
        num_points_per_token=128,
        min_points=16,
        max_fallback_tokens=32),
    # Bridge3D's plain transformer: 3 blocks, 256-d, 4 heads, MLP ratio 2, drop-path 0.1 (the one encoder base).
    backbone=_base_.plain_point_transformer,
    projector=dict(type='TokenProjector', in_channels=embed_dims, out_channels=feature_dim),
    # Group-balanced smooth-L1 (§3.4): the w-weighted mean of the region losses (paper weights / batch mean).
    loss=dict(type='GroupBalancedDistillLoss', beta=1.0, use_group_weights=True, weight_scale='batch_mean'))

# 10 warm-up epochs from 1e-3 x lr, cosine to 1e-6 at max_epochs (paper §4.1; ../_base_/schedules/).
param_scheduler = [
    dict(_base_.lr_warmup, end=_base_.warmup_epochs),
    dict(_base_.lr_cosine, begin=_base_.warmup_epochs, T_max=_base_.max_epochs - _base_.warmup_epochs,
         end=_base_.max_epochs),
]
