# ../benchmarks/threedetr_plain-transformer-sam-mtp_1xb8-1080e_scannet-3d.py at CPU size on the synthetic
# ScanNet-format demo (docs/finetune.md):
# the demo's CPU-width encoder, a 2-layer 32-d decoder with 32 token queries, 4096 points, 2 epochs, no warm-up.
_base_ = [
    '../benchmarks/threedetr_plain-transformer-sam-mtp_1xb8-1080e_scannet-3d.py',
    '../_base_/demo_scale.py',
    '../_base_/demo_finetune_scale.py',
]

data_root = _base_.ft_data_root
num_points = _base_.ft_num_points
model = dict(
    backbone=dict(
        tokenizer=dict(_delete_=True, **_base_.ft_sam_tokenizer),
        encoder=_base_.demo_encoder_size,
        init_cfg=dict(checkpoint=_base_.ft_pretrained_checkpoint)),
    bbox_head=dict(in_channels=_base_.demo_encoder_size['embed_dims'], num_queries=32, embed_dims=32,
                   num_decoder_layers=2, feedforward_channels=64, mlp_channels=(32, 32), dropout=0.0,
                   mlp_dropout=0.0),
    test_cfg=dict(empty_box_min_points=0))

# The benchmark's segments pipelines (_base_/datasets/scannet-3d_threedetr.py) on the small synthetic scenes:
# 4096 points, no cuboid crop, no rotation; the other steps are the benchmark's.
demo_load_points = dict(type='LoadPointsFromFile', coord_type='DEPTH', shift_height=False, load_dim=6,
                        use_dim=[0, 1, 2])
demo_sample = dict(type='PointSample', num_points=num_points)
train_pipeline = [
    demo_load_points, dict(type='LoadSceneSegments'),
    dict(type='LoadAnnotations3D', with_bbox_3d=True, with_label_3d=True),
    _base_.scannet_threedetr_align, demo_sample, _base_.scannet_threedetr_flip, _base_.scannet_threedetr_pack_train]
test_pipeline = [demo_load_points, dict(type='LoadSceneSegments'), _base_.scannet_threedetr_align, demo_sample,
                 _base_.scannet_threedetr_pack_test]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(times=1, dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=1e-3), clip_grad=dict(max_norm=1.0))
train_cfg = _base_.ft_train_cfg
param_scheduler = _base_.ft_param_scheduler
default_hooks = _base_.ft_hooks
randomness = _base_.ft_randomness
