# Point-MAE on the CPU demo data (tools/demo.py's synthetic frames and labels): the scene config
# configs/sam_mtp/pretrain/point-mae_plain-transformer_8xb8-120e_scannet-frames.py at demo scale (see
# ../_base_/demo_scale.py): the demo's encoder (so the demo's fine-tuning configs load it), 8192 points per frame,
# batch 8, stage 2's 30 epochs with one warm-up epoch, no dataloader workers.
_base_ = ['../pretrain/point-mae_plain-transformer_8xb8-120e_scannet-frames.py', '../_base_/demo_scale.py']

train_dataloader = _base_.demo_train_dataloader
embed_dims = _base_.demo_encoder_size['embed_dims']
model = dict(
    tokenizer=_base_.demo_knn_tokenizer,  # 64-point groups, the demo's token size
    backbone=_base_.demo_encoder_size,
    decoder=dict(in_channels=embed_dims, embed_dims=embed_dims),
    head=dict(in_channels=embed_dims))
param_scheduler = [dict(_base_.lr_warmup, **_base_.demo_lr_warmup), dict(_base_.lr_cosine, **_base_.demo_lr_cosine)]
train_cfg = _base_.demo_train_cfg
default_hooks = _base_.demo_default_hooks
log_processor = _base_.demo_log_processor
randomness = _base_.demo_randomness  # seeded, with torch's deterministic CPU kernels
