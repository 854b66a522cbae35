# Spec §5.2 ablation: the stage-2 student encoder starts from the stage-1 encoder instead of random weights.
# Give the stage-1 checkpoint twice (teacher and student init):
#   --cfg-options model.teacher_checkpoint=work_dirs/stage1_scannet/epoch_120.pth \
#                 model.backbone.init_cfg.checkpoint=work_dirs/stage1_scannet/epoch_120.pth
_base_ = ['../stage2_scannet.py']

model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.')))
