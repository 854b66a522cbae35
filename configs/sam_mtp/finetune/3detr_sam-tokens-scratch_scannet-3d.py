# Ablation (not a paper row): 3detr_sam-mtp-ft_scannet-3d.py from random initialisation, i.e. SAM-guided tokens
# and token queries without pretraining. Compare with 3detr_plain-transformer_scannet-3d.py (the paper's "+Plain
# Transformer" row: kNN tokens, FPS queries) to separate the tokenization's share of the gain from pretraining's.
_base_ = ['./3detr_sam-mtp-ft_scannet-3d.py']

model = dict(backbone=dict(init_cfg=None))
