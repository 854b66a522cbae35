# Bridge3D pretraining (Chen et al., NeurIPS 2023) of the plain point transformer on ScanNet frames, read from
# Zhimin-C/Bridge3D Pretrain/cfgs/pretrain/base.yaml and Pretrain/models/ReCon.py (docs/pretraining.md, "Bridge3D
# pretraining", lists the differences). 8 GPUs x 8 frames = total batch 64 (base.yaml total_bs). Launch:
#   bash tools/dist_train.sh configs/sam_mtp/pretrain/bridge3d_plain-transformer_8xb8-120e_scannet-frames.py 8
# Reads the SAM/DINOv2 labels with Bridge3D's text targets added (tools/add_text_labels.py with
# configs/sam_mtp/labels/bridge3d_text_clip.py). The encoder (backbone.*) loads into every fine-tuning config.
# Runtime, frames, encoder and the 120-epoch AdamW + warm-up/cosine schedule come from stage 1 (its bases, the same
# for every pretraining method, as for Point-MAE); the model is replaced whole, the optimizer and schedule get
# Bridge3D's numbers below.
_base_ = ['./sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py']

embed_dims = _base_.plain_point_transformer['embed_dims']  # base.yaml trans_dim / encoder_dims
image_feature_dim = 768  # the labels' DINOv2 ViT-B features (Bridge3D: DINOv2 ViT-L, 1024); = metainfo feature_dim
text_feature_dim = 512  # CLIP ViT-B text features (Bridge3D's); = the labels' text_feature_dim
# ReCon's img_proj / text_proj initialisation (ReCon._init_weights): weights ~ N(0.02, 0.01), biases 0.
scene_head_init = dict(type='Normal', layer='Linear', mean=0.02, std=0.01, bias=0.)

model = dict(
    _delete_=True,
    type='Bridge3D',
    data_preprocessor=dict(type='BaseDataPreprocessor'),
    # base.yaml: num_group 256, group_size 128.
    tokenizer=dict(type='FPSKNNTokenizer', num_tokens=256, num_points_per_token=128),
    # base.yaml: depth 3, num_heads 4, drop_path_rate 0.1; MLP ratio 2 and no qkv bias (transformer.py defaults):
    # the one encoder base.
    backbone=_base_.plain_point_transformer,
    # ReCon's cls / img / text tokens and their cross-attention, one block per encoder block.
    global_queries=dict(
        type='GlobalQueryBranch',
        embed_dims=embed_dims,
        num_layers=3,
        num_heads=4,
        mlp_ratio=2.,
        drop_path_rate=0.1,
        query_names=('cls', 'img', 'text')),
    # base.yaml: decoder_depth 2, decoder_num_heads 4.
    decoder=dict(type='MaskedTokenDecoder', in_channels=embed_dims, embed_dims=embed_dims, num_layers=2, num_heads=4,
                 mlp_ratio=2., drop_path_rate=0.1),
    reconstruction_head=dict(type='TokenProjector', in_channels=embed_dims),  # increase_dim: C -> 3 x 128
    region_image_head=dict(type='TokenProjector', in_channels=embed_dims, out_channels=image_feature_dim),
    region_text_head=dict(type='TokenProjector', in_channels=embed_dims, out_channels=text_feature_dim),
    scene_image_head=dict(type='TokenProjector', in_channels=embed_dims, out_channels=image_feature_dim,
                          init_cfg=scene_head_init),
    scene_text_head=dict(type='TokenProjector', in_channels=embed_dims, out_channels=text_feature_dim,
                         init_cfg=scene_head_init),
    mask_ratio=0.75,
    drop_ratio=0.7,
    # base.yaml loss: cdl2; every other term is ReCon's nn.SmoothL1Loss(); all summed with weight 1.
    loss_reconstruction=dict(type='ChamferL2Loss', loss_weight=1.0),
    loss_region_image=dict(type='mmdet.SmoothL1Loss', beta=1.0, loss_weight=1.0),
    loss_region_text=dict(type='mmdet.SmoothL1Loss', beta=1.0, loss_weight=1.0),
    loss_scene_image=dict(type='mmdet.SmoothL1Loss', beta=1.0, loss_weight=1.0),
    loss_scene_text=dict(type='mmdet.SmoothL1Loss', beta=1.0, loss_weight=1.0))

# The SAM-MTP frame pipeline (same data for every method of the comparison), packed with the text targets.
train_pipeline = _base_.bridge3d_train_pipeline
train_dataloader = dict(
    batch_size=8,
    collate_fn=dict(type='bridge3d_collate'),
    dataset=dict(type='Bridge3DFrameDataset', pipeline=train_pipeline, require_groups=False))

# base.yaml: AdamW lr 5e-4, weight decay 0.05; no decay on 1-D parameters, biases and the learned tokens
# (Bridge3D's build_opti_sche skips names containing "token"; their positions are decayed there too).
optim_wrapper = dict(
    optimizer=dict(lr=5e-4, weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'mask_token': dict(decay_mult=0.), 'query_tokens': dict(decay_mult=0.)}))
# base.yaml: CosLR over 120 epochs with 10 warm-up epochs from 1e-6 (timm, stepped per epoch); here the
# project's per-iteration schedule (_base_/schedules/warmup-cosine.py): linear warm-up from 1e-6 (5e-4 x 2e-3),
# cosine to 1e-6.
param_scheduler = [
    dict(_base_.lr_warmup, start_factor=2e-3, end=_base_.warmup_epochs),
    dict(_base_.lr_cosine, begin=_base_.warmup_epochs, T_max=_base_.max_epochs - _base_.warmup_epochs,
         end=_base_.max_epochs),
]
# The cls query has no loss (base.yaml self_contrastive: FALSE), as in the reference: DDP must allow it.
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
auto_scale_lr = dict(enable=False, base_batch_size=64)
