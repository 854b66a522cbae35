# Table 4 row 2 ("Stage 1 + MTP in same stage") at demo scale: the full-scale
# ../../ablations/sam-mtp-joint_plain-transformer_4xb16-120e_scannet-frames.py on the demo's stage-1 config: one run
# with L_distill + L_ins + L_token, the MTP targets being the same encoder's detached full-input features.
# Heads at the demo encoder's width, and the demo's stage-2 schedule (30 epochs): the one-stage run gets as many epochs as the longer of the two stages it replaces.
_base_ = ['../sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py']

embed_dims = _base_.demo_encoder_size['embed_dims']
model = dict(
    type='SamMtpJointPretrainer',
    decoder=dict(type='MaskedTokenDecoder', in_channels=embed_dims, embed_dims=embed_dims, num_layers=2, num_heads=4,
                 mlp_ratio=2.),
    instance_head=dict(type='TokenProjector', in_channels=embed_dims, num_layers=2, hidden_channels=embed_dims),
    token_head=dict(type='TokenProjector', in_channels=embed_dims),
    mask_ratio=0.6,
    target_norm=False,
    loss_ins=dict(type='TokenFeatureMSELoss', loss_weight=1.0),
    loss_token=dict(type='TokenFeatureMSELoss', loss_weight=1.0))
param_scheduler = [dict(_base_.lr_warmup, **_base_.demo_lr_warmup), dict(_base_.lr_cosine, **_base_.demo_lr_cosine)]
train_cfg = _base_.demo_train_cfg
default_hooks = _base_.demo_default_hooks
