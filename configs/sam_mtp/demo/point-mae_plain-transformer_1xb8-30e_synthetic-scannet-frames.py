# Point-MAE on the CPU demo data (tools/demo.py's synthetic frames and labels): the scene config
# configs/sam_mtp/pretrain/point-mae_plain-transformer_8xb8-120e_scannet-frames.py at demo scale (see
# ../_base_/demo_scale.py): the demo's encoder (so the demo's fine-tuning configs load it), 8192 points per frame,
# batch 8, stage 2's 30 epochs with one warm-up epoch, no dataloader workers.
_base_ = ['../pretrain/point-mae_plain-transformer_8xb8-120e_scannet-frames.py', '../_base_/demo_scale.py']

embed_dims = _base_.demo_encoder_size['embed_dims']
model = dict(
    # 64-point groups, the demo's token size (demo_tokenizer); 128 centres x 64 points cover the 8192 points
    # about once, as Bridge3D's 256 x 128 cover its 20,000 points 1.6 times.
    tokenizer=dict(num_tokens=128, num_points_per_token=64),
    backbone=_base_.demo_encoder_size,
    decoder=dict(in_channels=embed_dims, embed_dims=embed_dims),
    head=dict(in_channels=embed_dims))
train_dataloader = _base_.demo_train_dataloader
param_scheduler = [dict(_base_.lr_warmup, **_base_.demo_lr_warmup),
                   dict(_base_.lr_cosine, **_base_.demo_lr_cosine)]
train_cfg = dict(max_epochs=_base_.demo_max_epochs)
default_hooks = _base_.demo_default_hooks
log_processor = dict(window_size=5)
# Same seed, same numbers on the same machine: also torch's deterministic CPU kernels.
randomness = dict(seed=0, deterministic=True)
