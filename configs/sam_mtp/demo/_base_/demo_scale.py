# Demo-scale settings shared by the CPU demo's stage-1 and stage-2 configs. Only new names are defined here
# (mmengine forbids a key defined by two bases); the demo configs apply them to the paper's configs.
demo_feature_dim = 64  # the stand-in random ViT's width (configs/sam_mtp/labels/demo_stand_in.py)
demo_max_epochs = 30  # stage 2
# Stage 1 needs half as long at demo scale: a linear probe of its features after 15 epochs matches 30
# (tools/linear_probe.py, per-point mIoU 0.198 vs 0.189-0.206), while stage 2 is still far from done at 15.
demo_stage1_epochs = 15
demo_warmup_epochs = 1
demo_data_root = 'data/demo/scannet/sam_mtp_labels/'
demo_tokenizer = dict(num_points_per_token=64)  # and stage 1's: every region its token, no cap
demo_train_pipeline = [
    dict(type='FrameCenterPoints', axes='xy'),
    dict(type='FrameRandomRotScale', rotation_range=3.14159265, scale_range=(0.8, 1.2)),
    dict(type='FrameRandomJitter', sigma=0.01, clip=0.05),
    dict(type='FrameRandomDropout', max_ratio=0.1),
    dict(type='FrameSamplePoints', num_points=8192),
    dict(type='PackFrameInputs'),
]
demo_train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    # 120 label files read 15-30 times each: keep them in memory (reading and unzipping was half the step time).
    dataset=dict(data_root=demo_data_root, pipeline=demo_train_pipeline, cache_frames=True))
demo_param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=demo_warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=demo_max_epochs - demo_warmup_epochs, eta_min=1e-5, by_epoch=True,
         begin=demo_warmup_epochs, end=demo_max_epochs, convert_to_iter_based=True),
]
demo_stage1_param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=demo_warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=demo_stage1_epochs - demo_warmup_epochs, eta_min=1e-5, by_epoch=True,
         begin=demo_warmup_epochs, end=demo_stage1_epochs, convert_to_iter_based=True),
]
demo_default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=demo_max_epochs, max_keep_ckpts=1))
demo_stage1_default_hooks = dict(logger=dict(interval=5),
                                 checkpoint=dict(interval=demo_stage1_epochs, max_keep_ckpts=1))
# The plain transformer at CPU width. The demo's fine-tuning configs
# (configs/sam_mtp/finetune/synthetic/) build the same encoder so that the stage-2 weights load 1:1.
demo_encoder = dict(
    type='PlainPointTransformer',
    embed_dims=64,
    num_layers=2,
    num_heads=4,
    mlp_ratio=2.,
    drop_path_rate=0.1,
    pointnet_channels=(32, 64, 128),
    pos_hidden_dims=64)
