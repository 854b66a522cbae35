# Table 3 row 5, stage 2: the main stage-2 recipe on the teacher trained without re-weighting (stage 2 itself
# has no group weights; only the teacher differs).
#   --cfg-options model.teacher_checkpoint=work_dirs/$STAGE1/epoch_120.pth
# with STAGE1=sam-mtp-stage1-no-reweight_plain-transformer_4xb16-120e_scannet-frames
_base_ = ['../pretrain/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames.py']

model = dict(teacher=dict(loss=dict(use_group_weights=False)))
train_dataloader = dict(dataset=dict(require_groups=False))
