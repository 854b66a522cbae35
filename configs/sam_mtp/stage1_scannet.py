# SAM-MTP stage 1: region-level dense distillation (paper §3.2-3.4) on ScanNet frames.
# 4 GPUs x 16 frames = total batch 64 (paper). Launch:
#   bash tools/dist_train.sh configs/sam_mtp/stage1_scannet.py 4
# Outputs work_dirs/stage1_scannet/epoch_120.pth, the teacher of configs/sam_mtp/stage2_scannet.py.
_base_ = [
    './_base_/pretrain_runtime.py',
    './_base_/datasets/scannet_frames.py',
    './_base_/schedules/adamw_cosine_120e.py',
]

feature_dim = 768  # DINOv2 ViT-B region targets; must equal the label split's metainfo feature_dim
embed_dims = 256

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
    # Bridge3D's plain transformer: 3 blocks, 256-d, 4 heads, MLP ratio 2, drop-path 0.1.
    backbone=dict(
        type='PlainPointTransformer',
        embed_dims=embed_dims,
        num_layers=3,
        num_heads=4,
        mlp_ratio=2.,
        drop_path_rate=0.1),
    projector=dict(type='TokenProjector', in_channels=embed_dims, out_channels=feature_dim),
    # Group-balanced smooth-L1 (§3.4): the w-weighted mean of the region losses (paper weights / batch mean).
    loss=dict(type='GroupBalancedDistillLoss', beta=1.0, use_group_weights=True, weight_scale='batch_mean'))
