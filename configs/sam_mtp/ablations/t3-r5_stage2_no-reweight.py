# Table 3 row 5, stage 2: the main stage-2 recipe on the teacher trained without re-weighting (stage 2 itself
# has no group weights; only the teacher differs).
#   --cfg-options model.teacher_checkpoint=work_dirs/t3-r5_stage1_no-reweight/epoch_120.pth
_base_ = ['../stage2_scannet.py']

model = dict(teacher=dict(loss=dict(use_group_weights=False)))
train_dataloader = dict(dataset=dict(require_groups=False))
