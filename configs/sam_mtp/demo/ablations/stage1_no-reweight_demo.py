# Table 3 row 5 (Dense Distill. + MTP + SAM-Guided Tokenize, no re-weighting), stage 1 at demo scale:
# ../../ablations/t3-r5_stage1_no-reweight.py's switch on ../stage1_demo.py. Stage 2: stage2_no-reweight_demo.py.
_base_ = ['../stage1_demo.py']

model = dict(loss=dict(use_group_weights=False))
train_dataloader = dict(dataset=dict(require_groups=False))
