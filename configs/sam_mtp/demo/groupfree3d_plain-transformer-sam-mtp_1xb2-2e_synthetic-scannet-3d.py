# ../benchmarks/groupfree3d_plain-transformer-sam-mtp_4xb8-80e_scannet-3d.py at CPU size on the synthetic
# ScanNet-format demo (docs/finetune.md):
# the demo's CPU-width encoder (as tools/demo.py pretrains it), a 2-layer 64-d GroupFree3D head with 32
# proposals, 4096 points, 2 epochs.
_base_ = [
    '../benchmarks/groupfree3d_plain-transformer-sam-mtp_4xb8-80e_scannet-3d.py',
    '../_base_/demo_scale.py',
    '../_base_/demo_finetune_scale.py',
]

data_root = _base_.ft_data_root
num_points = _base_.ft_num_points
head_dims = 64
model = dict(
    backbone=dict(
        tokenizer=dict(_delete_=True, **_base_.ft_sam_tokenizer),
        # The one encoder at the demo's widths, as the demo's pretraining configs build it.
        encoder=dict(_base_.plain_point_transformer, **_base_.demo_encoder_size, _delete_=True),
        out_channels=head_dims,
        num_output_tokens=_base_.ft_sam_tokenizer['max_tokens'],
        init_cfg=dict(checkpoint=_base_.ft_pretrained_checkpoint)),
    bbox_head=dict(
        in_channels=head_dims,
        num_decoder_layers=2,
        num_proposal=32,
        transformerlayers=dict(
            attn_cfgs=dict(embed_dims=head_dims, num_heads=4),
            ffn_cfgs=dict(embed_dims=head_dims, feedforward_channels=128)),
        pred_layer_cfg=dict(in_channels=head_dims, shared_conv_channels=(head_dims, head_dims)),
        decoder_self_posembeds=dict(type='ConvBNPositionalEncoding', input_channel=6, num_pos_feats=head_dims),
        decoder_cross_posembeds=dict(type='ConvBNPositionalEncoding', input_channel=3, num_pos_feats=head_dims)),
    test_cfg=dict(prediction_stages='last'))

train_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', load_dim=6, use_dim=[0, 1, 2]),
    dict(type='LoadSceneSegments'),
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True, with_mask_3d=True, with_seg_3d=True),
    dict(type='GlobalAlignment', rotation_axis=2),
    dict(type='PointSegClassMapping'),
    dict(type='PointSample', num_points=num_points),
    dict(type='RandomFlip3D', sync_2d=False, flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type='GlobalRotScaleTrans', rot_range=[-0.087266, 0.087266], scale_ratio_range=[1.0, 1.0]),
    dict(type='Pack3DDetInputs',
         keys=['points', 'gt_bboxes_3d', 'gt_labels_3d', 'pts_semantic_mask', 'pts_instance_mask']),
]
test_pipeline = [
    dict(type='LoadPointsFromFile', coord_type='DEPTH', load_dim=6, use_dim=[0, 1, 2]),
    dict(type='LoadSceneSegments'),
    dict(type='GlobalAlignment', rotation_axis=2),
    dict(type='PointSample', num_points=num_points),
    dict(type='Pack3DDetInputs', keys=['points']),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(times=1, dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(
    num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(max_epochs=2, val_interval=2)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True)]
default_hooks = _base_.ft_hooks
# Seeded, with torch's deterministic CPU kernels (tools/demo.py sets the seed of each run).
randomness = dict(seed=0, deterministic=True)
