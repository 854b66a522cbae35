# Spec §5.2 ablation: the stage-2 student encoder starts from the stage-1 encoder instead of random weights.
# Give the stage-1 checkpoint twice (teacher and student init):
#   --cfg-options model.teacher_checkpoint=work_dirs/$STAGE1/epoch_120.pth \
#                 model.backbone.init_cfg.checkpoint=work_dirs/$STAGE1/epoch_120.pth
# with STAGE1=sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames (the main stage 1)
_base_ = ['../pretrain/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames.py']

model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.')))
