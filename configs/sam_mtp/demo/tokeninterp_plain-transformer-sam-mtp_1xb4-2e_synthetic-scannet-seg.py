# ../benchmarks/tokeninterp_plain-transformer-sam-mtp_2xb16-200e_scannet-seg.py at CPU size on the synthetic
# ScanNet-format demo (docs/finetune.md):
# the demo's CPU-width encoder, a 32-d head, 2048-point 2 m patches, sliding-window test over the whole scenes,
# 2 epochs.
_base_ = [
    '../benchmarks/tokeninterp_plain-transformer-sam-mtp_2xb16-200e_scannet-seg.py',
    '../_base_/demo_scale.py',
    '../_base_/demo_finetune_scale.py',
]

data_root = _base_.ft_data_root
num_points = 2048
block_size = 2.0
model = dict(
    backbone=dict(
        tokenizer=dict(_delete_=True, **_base_.ft_sam_tokenizer),
        # The one encoder at the demo's widths, as the demo's pretraining configs build it.
        encoder=dict(_base_.plain_point_transformer, **_base_.demo_encoder_size, _delete_=True),
        num_output_tokens=_base_.ft_sam_tokenizer['max_tokens'],
        init_cfg=dict(checkpoint=_base_.ft_pretrained_checkpoint)),
    decode_head=dict(in_channels=_base_.demo_encoder_size['embed_dims'], mlp_channels=(32, 32), dropout_ratio=0.0),
    test_cfg=dict(num_points=num_points, block_size=block_size, sample_rate=0.5, batch_size=8))

# The benchmark's segments pipelines (_base_/datasets/scannet-seg_tokeninterp.py) with the demo's patches; the other
# steps are the benchmark's.
demo_load_points = dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, use_color=True, load_dim=6,
                        use_dim=[0, 1, 2, 3, 4, 5])
demo_load_annotations = dict(type='LoadAnnotations3D', with_bbox_3d=False, with_label_3d=False, with_mask_3d=False,
                             with_seg_3d=True)
train_pipeline = [
    demo_load_points, dict(type='LoadSceneSegments'), demo_load_annotations, _base_.seg_class_mapping,
    dict(_base_.scannet_seg_patch_sample, num_points=num_points, block_size=block_size), _base_.seg_normalize_color,
    _base_.seg_pack_train]
test_pipeline = [demo_load_points, dict(type='LoadSceneSegments'), demo_load_annotations, _base_.seg_class_mapping,
                 _base_.seg_normalize_color, _base_.seg_pack_test]
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = _base_.ft_train_cfg
param_scheduler = _base_.ft_param_scheduler
default_hooks = _base_.ft_hooks
randomness = _base_.ft_randomness
