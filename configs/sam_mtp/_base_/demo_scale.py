# Demo-scale settings shared by the CPU demo's pretraining configs (configs/sam_mtp/demo/). Only new names are
# defined here (mmengine forbids a key defined by two bases); the demo configs apply them to the paper's configs.
demo_feature_dim = 64  # the stand-in random ViT's width (configs/sam_mtp/labels/demo_stand_in.py)
demo_max_epochs = 30  # stage 2
# Stage 1 needs half as long at demo scale: a linear probe of its features after 15 epochs matches 30
# (tools/linear_probe.py, per-point mIoU 0.198 vs 0.189-0.206), while stage 2 is still far from done at 15.
demo_stage1_epochs = 15
demo_warmup_epochs = 1
demo_data_root = 'data/demo/scannet/sam_mtp_labels/'
demo_tokenizer = dict(num_points_per_token=64)  # and stage 1's: every region its token, no cap
# FPS/kNN tokens of the demo's token size (Point-MAE, Bridge3D, the kNN-token ablations): 128 centres x 64 points
# cover the 8192 points about once, as Bridge3D's 256 x 128 cover its 20,000 points 1.6 times.
demo_knn_tokenizer = dict(type='FPSKNNTokenizer', num_tokens=128, num_points_per_token=64)
# The frame pipelines of ./datasets/scannet-frames.py with 8192 points per frame. Its steps are restated, not read:
# a demo config inherits both this file and (through the paper's config) that one, and mmengine refuses a key
# defined by two bases, so this file cannot inherit it.
demo_frames_center = dict(type='FrameCenterPoints', axes='xy')
demo_frames_rotate_scale = dict(type='FrameRandomRotScale', rotation_range=3.14159265, scale_range=(0.8, 1.2))
demo_frames_jitter = dict(type='FrameRandomJitter', sigma=0.01, clip=0.05)
demo_frames_dropout = dict(type='FrameRandomDropout', max_ratio=0.1)
demo_frames_sample = dict(type='FrameSamplePoints', num_points=8192)
demo_train_pipeline = [demo_frames_center, demo_frames_rotate_scale, demo_frames_jitter, demo_frames_dropout,
                       demo_frames_sample, dict(type='PackFrameInputs')]
# The same frames packed with Bridge3D's text targets (demo/bridge3d_*.py).
demo_bridge3d_train_pipeline = [demo_frames_center, demo_frames_rotate_scale, demo_frames_jitter, demo_frames_dropout,
                                demo_frames_sample, dict(type='PackBridge3DInputs')]
demo_train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    # 120 label files read 15-30 times each: keep them in memory (reading and unzipping was half the step time).
    dataset=dict(data_root=demo_data_root, pipeline=demo_train_pipeline, cache_frames=True))
# The warm-up + cosine schedule (./schedules/warmup-cosine.py) at demo scale: one warm-up epoch from 1e-2 x lr,
# cosine to 1e-5 at the end of stage 2 (30 epochs) or stage 1 (15). The demo configs apply it as
#   param_scheduler = [dict(_base_.lr_warmup, **_base_.demo_lr_warmup), dict(_base_.lr_cosine, **_base_.demo_lr_cosine)]
# with train_cfg = _base_.demo_train_cfg and default_hooks = _base_.demo_default_hooks (stage 1: the demo_stage1_ ones).
demo_lr_warmup = dict(start_factor=1e-2, end=demo_warmup_epochs)
demo_lr_cosine = dict(begin=demo_warmup_epochs, T_max=demo_max_epochs - demo_warmup_epochs, end=demo_max_epochs,
                      eta_min=1e-5)
demo_stage1_lr_cosine = dict(begin=demo_warmup_epochs, T_max=demo_stage1_epochs - demo_warmup_epochs,
                             end=demo_stage1_epochs, eta_min=1e-5)
demo_train_cfg = dict(max_epochs=demo_max_epochs)
demo_stage1_train_cfg = dict(max_epochs=demo_stage1_epochs)
demo_default_hooks = dict(logger=dict(interval=5), checkpoint=dict(interval=demo_max_epochs, max_keep_ckpts=1))
demo_stage1_default_hooks = dict(logger=dict(interval=5),
                                 checkpoint=dict(interval=demo_stage1_epochs, max_keep_ckpts=1))
demo_log_processor = dict(window_size=5)
# Same seed, same numbers on the same machine: also torch's deterministic CPU kernels.
demo_randomness = dict(seed=0, deterministic=True)
# The plain transformer at CPU width: these keys replace those of the one encoder base
# (_base_/models/plain-point-transformer.py; the demo configs merge them into model.backbone, or into the
# fine-tuning backbone's encoder, so every demo config builds the same encoder and the stage-2 weights load 1:1).
demo_encoder_size = dict(embed_dims=64, num_layers=2, pointnet_channels=(32, 64, 128), pos_hidden_dims=64)
