# Spec Q6 ablation: stage-2 targets are the teacher's projector outputs (768-d, DINOv2 space), one reading of
# the paper's "masked tokens obtained from the teacher model's decoder". Heads are sized to 768 automatically.
#   --cfg-options model.teacher_checkpoint=work_dirs/stage1_scannet/epoch_120.pth
_base_ = ['../stage2_scannet.py']

model = dict(target='projector')
