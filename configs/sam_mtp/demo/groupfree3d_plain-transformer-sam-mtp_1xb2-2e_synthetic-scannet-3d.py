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

# The benchmark's segments pipelines (_base_/datasets/scannet-3d_groupfree3d.py) on the small synthetic scenes:
# 4096 points; the other steps are the benchmark's.
demo_load_points = dict(type='LoadPointsFromFile', coord_type='DEPTH', load_dim=6, use_dim=[0, 1, 2])
demo_sample = dict(type='PointSample', num_points=num_points)
train_pipeline = [
    demo_load_points, dict(type='LoadSceneSegments'),
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True, with_mask_3d=True, with_seg_3d=True),
    _base_.scannet_gf3d_align, _base_.scannet_gf3d_class_mapping, demo_sample, _base_.scannet_gf3d_flip,
    _base_.scannet_gf3d_rotate, _base_.scannet_gf3d_pack_train]
test_pipeline = [demo_load_points, dict(type='LoadSceneSegments'), _base_.scannet_gf3d_align, demo_sample,
                 _base_.scannet_gf3d_pack_test]  # sampled once, no test-time augmentation
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(times=1, dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = _base_.ft_train_cfg
param_scheduler = _base_.ft_param_scheduler
default_hooks = _base_.ft_hooks
randomness = _base_.ft_randomness
