# Stage 1 on the CPU demo data (tools/demo.py): the paper's model and loss at demo scale (see
# ../_base_/demo_scale.py: 64-d stand-in targets, 8192 points per frame, 15 epochs, no dataloader workers).
_base_ = ['../pretrain/sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py', '../_base_/demo_scale.py']

model = dict(
    tokenizer=_base_.demo_tokenizer,
    backbone=_base_.demo_encoder_size,
    projector=dict(in_channels=_base_.demo_encoder_size['embed_dims'], out_channels=_base_.demo_feature_dim))
train_dataloader = _base_.demo_train_dataloader
param_scheduler = [dict(_base_.lr_warmup, **_base_.demo_lr_warmup),
                   dict(_base_.lr_cosine, **_base_.demo_stage1_lr_cosine)]
train_cfg = dict(max_epochs=_base_.demo_stage1_epochs)
default_hooks = _base_.demo_stage1_default_hooks
log_processor = dict(window_size=5)
# Same seed, same numbers on the same machine: also torch's deterministic CPU kernels.
randomness = dict(seed=0, deterministic=True)
