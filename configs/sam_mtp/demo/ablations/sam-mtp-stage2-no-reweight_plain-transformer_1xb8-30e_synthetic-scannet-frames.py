# Table 3 row 5, stage 2 at demo scale: ../sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py on the teacher trained without re-weighting
# (sam-mtp-stage1-no-reweight_plain-transformer_1xb8-15e_synthetic-scannet-frames.py); ../../ablations/sam-mtp-stage2-no-reweight_plain-transformer_4xb16-120e_scannet-frames.py's switch.
_base_ = ['../sam-mtp-stage2_plain-transformer_1xb8-30e_synthetic-scannet-frames.py']

model = dict(teacher=dict(loss=dict(use_group_weights=False)))
train_dataloader = dict(dataset=dict(require_groups=False))
