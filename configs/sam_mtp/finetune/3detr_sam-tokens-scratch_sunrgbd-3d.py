# Ablation (not a paper row): 3detr_sam-mtp-ft_sunrgbd-3d.py from random initialisation (SAM-guided tokens and
# token queries without pretraining); the paper's "+Plain Transformer" row is 3detr_plain-transformer_sunrgbd-3d.py.
_base_ = ['./3detr_sam-mtp-ft_sunrgbd-3d.py']

model = dict(backbone=dict(init_cfg=None))
