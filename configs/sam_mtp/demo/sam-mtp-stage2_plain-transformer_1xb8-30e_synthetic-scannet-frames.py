# Stage 2 on the CPU demo data (tools/demo.py). The frozen teacher is the demo's stage-1 model:
#   --cfg-options model.teacher_checkpoint=work_dirs/demo/pretrain/seed0/stage1/epoch_15.pth
_base_ = ['../pretrain/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames.py', '../_base_/demo_scale.py']

train_dataloader = _base_.demo_train_dataloader
embed_dims = _base_.demo_encoder_size['embed_dims']
model = dict(
    tokenizer=_base_.demo_tokenizer,
    backbone=_base_.demo_encoder_size,
    decoder=dict(in_channels=embed_dims, embed_dims=embed_dims),
    instance_head=dict(in_channels=embed_dims, hidden_channels=embed_dims),
    token_head=dict(in_channels=embed_dims),
    teacher=dict(
        tokenizer=_base_.demo_tokenizer,
        backbone=_base_.demo_encoder_size,
        projector=dict(in_channels=embed_dims, out_channels=_base_.demo_feature_dim)))
param_scheduler = [dict(_base_.lr_warmup, **_base_.demo_lr_warmup), dict(_base_.lr_cosine, **_base_.demo_lr_cosine)]
train_cfg = _base_.demo_train_cfg
default_hooks = _base_.demo_default_hooks
log_processor = _base_.demo_log_processor
randomness = _base_.demo_randomness  # seeded, with torch's deterministic CPU kernels
