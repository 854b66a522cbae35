# Table 3 row 5, stage 2 at demo scale: ../stage2_demo.py on the teacher trained without re-weighting
# (stage1_no-reweight_demo.py); ../../ablations/t3-r5_stage2_no-reweight.py's switch.
_base_ = ['../stage2_demo.py']

model = dict(teacher=dict(loss=dict(use_group_weights=False)))
train_dataloader = dict(dataset=dict(require_groups=False))
