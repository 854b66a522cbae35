# Stage 1 on the CPU demo data (tools/demo.py): the paper's model and loss at demo scale (see
# ../_base_/demo_scale.py: 64-d stand-in targets, 8192 points per frame, 15 epochs, no dataloader workers).
_base_ = ['../pretrain/sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py', '../_base_/demo_scale.py']

train_dataloader = _base_.demo_train_dataloader
model = dict(
    tokenizer=_base_.demo_tokenizer,
    backbone=_base_.demo_encoder_size,
    projector=dict(in_channels=_base_.demo_encoder_size['embed_dims'], out_channels=_base_.demo_feature_dim))
param_scheduler = [dict(_base_.lr_warmup, **_base_.demo_lr_warmup),
                   dict(_base_.lr_cosine, **_base_.demo_stage1_lr_cosine)]
train_cfg = _base_.demo_stage1_train_cfg
default_hooks = _base_.demo_stage1_default_hooks
log_processor = _base_.demo_log_processor
randomness = _base_.demo_randomness  # seeded, with torch's deterministic CPU kernels
