# Table 3 row 2 ("Dense Distill." only): stage-1 distillation with Bridge3D's FPS+kNN tokens (256 x 128, each
# token takes the target of its centre point's region) and no group re-weighting. No stage 2.
_base_ = ['../pretrain/sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py']

model = dict(
    tokenizer=dict(_delete_=True, type='FPSKNNTokenizer', num_tokens=256, num_points_per_token=128),
    loss=dict(use_group_weights=False))
# Without re-weighting the K-means groups are not needed.
train_dataloader = dict(dataset=dict(require_groups=False))
