# The SAM-MTP backbone swapped into mmdet3d's OWN GroupFree3D ScanNet config, every change written out: the worked
# example of docs/finetune.md ("Swapping the backbone into a stock mmdet3d config"). It inherits nothing but the
# stock config, so this file is the complete diff a swap needs. It resolves to the same model, pipelines and
# optimizer as groupfree3d_plain-transformer-sam-mtp_4xb8-80e_scannet-3d.py (the "GroupFree3D + Ours" row of Table 1;
# tests/test_backbone_swap_config.py checks it), and tests/tools/test_paper_row_configs.py trains it. Needs
# data/scannet/scene_segments/<scene>.bin (tools/make_scene_segments.py) and a stage-2 checkpoint (below):
#   bash tools/dist_train.sh \
#       configs/sam_mtp/benchmarks/groupfree3d_plain-transformer-sam-mtp-swap_4xb8-80e_scannet-3d.py 4
_base_ = ['mmdet3d::groupfree3d/groupfree3d_head-L6-O256_4xb8_scannet-seg.py']

custom_imports = dict(imports=['projects.sam_mtp'], allow_failed_imports=False)

# 1. The backbone: PointNet2SASSG -> SamMtpPointBackbone (tokenizer + the pretrained plain transformer).
model = dict(
    backbone=dict(
        _delete_=True,  # none of PointNet2SASSG's arguments apply
        type='SamMtpPointBackbone',
        # SAM-guided tokens, as in pretraining: one token per scene segment (>= 16 points, 128 sampled per
        # token), unassigned points in FPS cells of about 64 (at most 512). Without it the backbone would
        # tokenize with its default FPS/kNN tokenizer, silently not the paper's tokens.
        tokenizer=dict(type='SAMGuidedTokenizer', num_points_per_token=128, min_points=16, max_tokens=1024,
                       max_fallback_tokens=512, fallback_size=64),
        # The pretraining encoder: configs/sam_mtp/_base_/models/plain-point-transformer.py, key for key.
        encoder=dict(type='PlainPointTransformer', embed_dims=256, num_layers=3, num_heads=4, mlp_ratio=2.,
                     drop_path_rate=0.1, pos_every_block=True),
        in_channels=4,  # the stock use_dim=[0, 1, 2] (xyz) + the segment id column LoadSceneSegments appends
        segment_channel=3,  # ... which is column 3
        out_channels=288,  # a Linear to the stock GroupFree3DHead's in_channels
        # The head's KPS takes the top 256 (num_proposal) of the token slots: a fixed 1024 slots, padded with
        # copies of real tokens (scenes have different token counts).
        num_output_tokens=1024,
        # The last checkpoint of configs/sam_mtp/pretrain/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames.py.
        init_cfg=dict(type='Pretrained',
                      checkpoint='work_dirs/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames/epoch_120.pth',
                      prefix='backbone.')))

# 2. The pipelines: the stock ones with LoadSceneSegments right after LoadPointsFromFile (the segment id then
# follows every sampling, flip and rotation of its point), restated whole.
backend_args = None
train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', load_dim=6, use_dim=[0, 1, 2], backend_args=backend_args),
    dict(type='LoadSceneSegments'),  # <data_root>/scene_segments/<scene>.bin
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True, with_mask_3d=True, with_seg_3d=True,
         backend_args=backend_args),
    dict(type='GlobalAlignment', rotation_axis=2),
    dict(type='PointSegClassMapping'),
    dict(type='PointSample', num_points=50000),
    dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type='GlobalRotScaleTrans', rot_range=[-0.087266, 0.087266], scale_ratio_range=[1.0, 1.0]),
    dict(type='Pack3DDetInputs',
         keys=['points', 'gt_bboxes_3d', 'gt_labels_3d', 'pts_semantic_mask', 'pts_instance_mask']),
]
test_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', load_dim=6, use_dim=[0, 1, 2], backend_args=backend_args),
    dict(type='LoadSceneSegments'),
    dict(type='GlobalAlignment', rotation_axis=2),
    dict(type='MultiScaleFlipAug3D', img_scale=(1333, 800), pts_scale_ratio=1, flip=False,
         transforms=[
             dict(type='GlobalRotScaleTrans', rot_range=[0, 0], scale_ratio_range=[1., 1.],
                  translation_std=[0, 0, 0]),
             dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5,
                  flip_ratio_bev_vertical=0.5),
             dict(type='PointSample', num_points=50000),
         ]),
    dict(type='Pack3DDetInputs', keys=['points']),
]
# The stock train set is RepeatDataset(times=5, dataset=ScanNetDataset): its pipeline sits one level down.
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# 3. Optional, the paper row's choice: the pretrained encoder trains at a tenth of the base lr (6e-4, like the
# stock config's transformer decoder); this key joins the stock custom_keys (configs merge dicts).
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone.encoder': dict(lr_mult=0.1, decay_mult=1.0)}))
