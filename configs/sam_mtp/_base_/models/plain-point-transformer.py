# The encoder of every SAM-MTP config: stage 1, stage 2 (student and teacher), the ablations, Point-MAE and Bridge3D
# pretraining, and (through sam-mtp-point-backbone.py) every fine-tuning config, so that a pretraining checkpoint's
# backbone.* weights load 1:1 into fine-tuning. Bridge3D's plain transformer: 3 blocks, 256-d, 4 heads, MLP ratio 2,
# drop-path 0.1 (Bridge3D Pretrain/cfgs/pretrain/base.yaml: trans_dim, depth, num_heads, drop_path_rate).
# Configs use it as model.backbone=_base_.plain_point_transformer (pretraining) or as the encoder of
# SamMtpPointBackbone (fine-tuning); the CPU demo merges its smaller widths into it (_base_/demo_scale.py).
plain_point_transformer = dict(type='PlainPointTransformer', embed_dims=256, num_layers=3, num_heads=4, mlp_ratio=2.,
                               drop_path_rate=0.1)
