# Scratch twin of 3detr_sam-mtp-ft_scannet-3d.py (random init, same tokens and schedule): paper Table 1,
# "3DETR + Plain Transformer" on ScanNetV2 (61.1 AP25 / 38.6 AP50; that row used FPS/kNN tokens, see
# 3detr_sam-mtp-ft-knn_scannet-3d.py for the kNN tokenizer).
_base_ = ['./3detr_sam-mtp-ft_scannet-3d.py']

model = dict(backbone=dict(init_cfg=None))
