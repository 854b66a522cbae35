# Table 4 row 2 ("Stage 1 + MTP in same stage"): one run of 120 epochs with L_distill + L_ins + L_token, the
# MTP targets being the same encoder's full-input features of the step, detached (no frozen teacher).
_base_ = ['../pretrain/sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py']

model = dict(
    type='SamMtpJointPretrainer',
    decoder=dict(type='MaskedTokenDecoder', in_channels=256, embed_dims=256, num_layers=2, num_heads=4,
                 mlp_ratio=2.),
    instance_head=dict(type='TokenProjector', in_channels=256, num_layers=2, hidden_channels=256),
    token_head=dict(type='TokenProjector', in_channels=256),
    mask_ratio=0.6,
    target_norm=False,
    loss_ins=dict(type='TokenFeatureMSELoss', loss_weight=1.0),
    loss_token=dict(type='TokenFeatureMSELoss', loss_weight=1.0))
