# Table 3 row 5 (Dense Distill. + MTP + SAM-Guided Tokenize, no re-weighting), stage 1: SAM tokens, every
# region weighted 1. Stage 2:
# sam-mtp-stage2-no-reweight_plain-transformer_4xb16-120e_scannet-frames.py.
_base_ = ['../pretrain/sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames.py']

model = dict(loss=dict(use_group_weights=False))
train_dataloader = dict(dataset=dict(require_groups=False))
