# Spec Q6 ablation: stage-2 targets are the teacher encoder tokens with a per-token LayerNorm (no affine),
# as data2vec/VideoPrism normalise their targets.
#   --cfg-options model.teacher_checkpoint=work_dirs/stage1_scannet/epoch_120.pth
_base_ = ['../stage2_scannet.py']

model = dict(target_norm=True)
