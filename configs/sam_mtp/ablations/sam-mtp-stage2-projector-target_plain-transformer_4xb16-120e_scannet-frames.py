# Spec Q6 ablation: stage-2 targets are the teacher's projector outputs (768-d, DINOv2 space), one reading of
# the paper's "masked tokens obtained from the teacher model's decoder". Heads are sized to 768 automatically.
#   --cfg-options model.teacher_checkpoint=work_dirs/$STAGE1/epoch_120.pth
# with STAGE1=sam-mtp-stage1_plain-transformer_4xb16-120e_scannet-frames (the main stage 1)
_base_ = ['../pretrain/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames.py']

model = dict(target='projector')
