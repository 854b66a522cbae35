# Point-MAE (Pang et al., ECCV 2022) on ScanNet frames: the pretraining of the paper's "+Point-MAE" rows, with
# SAM-MTP's encoder, data and fine-tuning. 8 GPUs x 8 frames = total batch 64. Launch:
#   bash tools/dist_train.sh configs/sam_mtp/pretrain/point-mae_plain-transformer_8xb8-120e_scannet-frames.py 8
# Fine-tuning configs load work_dirs/<this config>/epoch_120.pth with prefix='backbone.', like a stage-2 one.
#
# Sources: [B3D] Zhimin-C/Bridge3D Pretrain/cfgs/pretrain/base.yaml (HEAD 76722b33), whose reconstruction branch
# is Point-MAE on scenes; [PMAE] Pang-Yatian/Point-MAE cfgs/pretrain.yaml and models/Point_MAE.py (objects).
# docs/pretraining.md, "Point-MAE on scenes", lists the differences from Point-MAE.
#
# Data (20,000 points per frame [B3D] npoints), augmentation, runtime and the cosine schedule with 10 warm-up
# epochs and 120 epochs [B3D] scheduler come from stage 1, the same for every pretraining method; the model is
# replaced whole.
_base_ = ['./sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py']

group_size = 128  # [B3D] model.group_size (Point-MAE objects: 32 [PMAE])
embed_dims = 256  # [B3D] transformer_config.trans_dim = encoder_dims (Point-MAE objects: 384 [PMAE])

model = dict(
    _delete_=True,
    type='PointMAE',
    data_preprocessor=dict(type='BaseDataPreprocessor'),
    # FPS centres + kNN groups in local coordinates (Point-MAE's Group): 256 x 128 [B3D] num_group, group_size.
    tokenizer=dict(type='FPSKNNTokenizer', num_tokens=256, num_points_per_token=group_size),
    # SAM-MTP's encoder, key for key (every fine-tuning config loads it): 3 blocks, 256-d, 4 heads, MLP ratio 2,
    # drop-path 0.1 = [B3D] depth, trans_dim, num_heads, drop_path_rate (Point-MAE objects: 12 blocks, 384-d,
    # 6 heads, MLP ratio 4).
    backbone=_base_.plain_point_transformer,
    # Point-MAE's decoder at [B3D]'s scene size: decoder_depth 2, decoder_num_heads 4, MLP ratio 2, drop-path
    # linearly spaced to 0.1 (Point-MAE objects: 4 blocks, 6 heads, MLP ratio 4).
    decoder=dict(type='MaskedTokenDecoder', in_channels=embed_dims, embed_dims=embed_dims, num_layers=2,
                 num_heads=4, mlp_ratio=2., drop_path_rate=0.1),
    # increase_dim: Linear(256, 3 x 128) per masked token; loss cdl2 (Chamfer-L2) [B3D] model.loss = [PMAE].
    head=dict(type='PointGroupReconstructionHead', in_channels=embed_dims, loss=dict(type='ChamferL2Loss')),
    # [B3D] mask_ratio 0.75, mask_type 'rand' (Point-MAE objects: 0.6).
    mask_ratio=0.75)

# [B3D] optimizer: AdamW lr 5e-4, weight decay 0.05 (SAM-MTP: 1e-3). Warm-up from 1e-6 ([B3D]'s timm
# warmup_lr_init) = 2e-3 x lr; cosine to 1e-6 ([B3D] lr_min) over epochs 10-120 (_base_/schedules/warmup-cosine.py).
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [
    dict(_base_.lr_warmup, start_factor=2e-3, end=_base_.warmup_epochs),
    dict(_base_.lr_cosine, begin=_base_.warmup_epochs, T_max=_base_.max_epochs - _base_.warmup_epochs,
         end=_base_.max_epochs),
]
# [B3D] total_bs 64 = 8 per GPU x 8 GPUs. Point-MAE reads no region target or group weight: the same frames as
# SAM-MTP (frames without any SAM region are skipped as there), but the split need not be grouped.
train_dataloader = dict(batch_size=8, dataset=dict(require_groups=False))
auto_scale_lr = dict(enable=False, base_batch_size=64)
