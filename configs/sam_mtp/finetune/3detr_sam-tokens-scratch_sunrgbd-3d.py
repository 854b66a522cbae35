# Ablation (not a paper row): 3detr_sam-mtp-ft_sunrgbd-3d.py from random initialisation (SAM-guided tokens and
# token queries without pretraining); the paper's "+Plain Transformer" row is 3detr_plain-transformer_sunrgbd-3d.py.
# Data: SUN RGB-D v1 infos (label_v1, the paper's boxes), not create_data.py's default v2: docs/finetune.md, Data.
_base_ = ['./3detr_sam-mtp-ft_sunrgbd-3d.py']

model = dict(backbone=dict(init_cfg=None))
