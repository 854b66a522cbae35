# Table 3 row 5 (Dense Distill. + MTP + SAM-Guided Tokenize, no re-weighting), stage 1: SAM tokens, every
# region weighted 1. Stage 2: t3-r5_stage2_no-reweight.py.
_base_ = ['../stage1_scannet.py']

model = dict(loss=dict(use_group_weights=False))
train_dataloader = dict(dataset=dict(require_groups=False))
