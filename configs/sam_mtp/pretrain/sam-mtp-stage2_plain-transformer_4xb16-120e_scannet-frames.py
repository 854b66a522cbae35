# SAM-MTP stage 2: masked token prediction with the frozen stage-1 model as teacher (paper §3.5).
# Same data, schedule and total batch (16 x 4 GPUs) as stage 1. Give the stage-1 checkpoint:
#   bash tools/dist_train.sh configs/sam_mtp/pretrain/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames.py 4 \
#       --cfg-options model.teacher_checkpoint=$STAGE1/epoch_120.pth
# with STAGE1=work_dirs/sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames (stage 1's work dir).
# The teacher is never saved in stage-2 checkpoints: downstream configs load the student with
# init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.').
_base_ = ['./sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py']

model = dict(
    _delete_=True,
    type='SamMtpMaskedTokenPredictor',
    data_preprocessor=dict(type='BaseDataPreprocessor'),
    # Student: the same SAM-guided tokens (tokenized once, shared with the teacher) and a fresh encoder.
    tokenizer=_base_.model.tokenizer,
    backbone=_base_.plain_point_transformer,
    # Bridge3D's MAE decoder: 2 blocks, drop-path linearly spaced to 0.1, no qkv bias.
    decoder=dict(type='MaskedTokenDecoder', in_channels=256, embed_dims=256, num_layers=2, num_heads=4,
                 mlp_ratio=2., drop_path_rate=0.1),
    # L_ins head: 2-layer MLP on the mean-pooled visible features; L_token head: Linear. Their out_channels
    # are the target size (256 for target='encoder', 768 for 'projector'), filled in by the model.
    instance_head=dict(type='TokenProjector', in_channels=256, num_layers=2, hidden_channels=256),
    token_head=dict(type='TokenProjector', in_channels=256),
    # The stage-1 model; weights come from teacher_checkpoint (required, see the header).
    teacher=_base_.model,
    teacher_checkpoint=None,
    mask_ratio=0.6,
    target='encoder',  # teacher encoder tokens after the final LN (docs/design_choices.md#q6); 'projector' is an ablation
    target_norm=False,
    loss_ins=dict(type='TokenFeatureMSELoss', loss_weight=1.0),
    loss_token=dict(type='TokenFeatureMSELoss', loss_weight=1.0))
