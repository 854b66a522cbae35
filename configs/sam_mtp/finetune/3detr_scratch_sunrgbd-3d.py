# Scratch twin of 3detr_sam-mtp-ft_sunrgbd-3d.py (random init, same tokens and schedule): paper Table 1,
# "3DETR + Plain Transformer" on SUN RGB-D (57.6 AP25 / 31.9 AP50; that row used FPS/kNN tokens).
_base_ = ['./3detr_sam-mtp-ft_sunrgbd-3d.py']

model = dict(backbone=dict(init_cfg=None))
