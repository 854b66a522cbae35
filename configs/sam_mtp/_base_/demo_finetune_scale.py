# CPU-sized settings of the synthetic demo fine-tuning configs (data made by
#   python tools/make_synthetic_data.py --out data/demo/scannet
# and scene segments data/demo/scannet/scene_segments/ by tools/make_scene_segments.py, see docs/finetune.md).
# The encoder is the one the demo pretrains (demo_encoder_size of ./demo_scale.py, merged into the one encoder).
ft_data_root = 'data/demo/scannet/'
# The stage-2 checkpoint of the CPU demo (tools/demo.py,
# configs/sam_mtp/demo/sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py); --cfg-options
# model.backbone.init_cfg.checkpoint=PATH picks another one, model.backbone.init_cfg=None trains from scratch.
ft_pretrained_checkpoint = 'work_dirs/demo/pretrain/seed0/stage2/epoch_30.pth'
ft_num_points = 4096

# Scene tokens at demo scale: one token per segment (>= 8 points, 32 sampled), fallback cells of about 64
# unassigned points; at most 96 tokens, the fixed slots of the heads (segments beyond it merge into their
# nearest kept segment).
ft_sam_tokenizer = dict(type='SAMGuidedTokenizer', num_points_per_token=32, min_points=8, max_tokens=96,
                        max_fallback_tokens=64, fallback_size=64)

# Tiny runs: 2 epochs at a constant lr, no workers, log every iteration, keep the last checkpoint.
ft_train_cfg = dict(max_epochs=2, val_interval=2)
ft_param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True)]
ft_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_last=True, save_best=None))
# Seeded, with torch's deterministic CPU kernels (tools/demo.py sets the seed of each run).
ft_randomness = dict(seed=0, deterministic=True)
