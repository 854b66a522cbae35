# Table 3 row 5 (Dense Distill. + MTP + SAM-Guided Tokenize, no re-weighting), stage 1 at demo scale:
# ../../ablations/sam-mtp-stage1-no-reweight_plain-transformer_4xb16-120e_scannet-frames.py's switch on ../sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py. Stage 2: sam-mtp-stage2-no-reweight_plain-transformer_1xb8-30e_synthetic-scannet-frames.py.
_base_ = ['../sam-mtp-stage1_plain-transformer_1xb8-15e_synthetic-scannet-frames.py']

model = dict(loss=dict(use_group_weights=False))
train_dataloader = dict(dataset=dict(require_groups=False))
