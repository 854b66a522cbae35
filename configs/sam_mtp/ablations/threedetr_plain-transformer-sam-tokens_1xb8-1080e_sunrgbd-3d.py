# Ablation (not a paper row): ../benchmarks/threedetr_plain-transformer-sam-mtp_1xb8-1080e_sunrgbd-3d.py from random
# initialisation (SAM-guided tokens and token queries without pretraining); the paper's "+Plain Transformer" row is
# ../benchmarks/threedetr_plain-transformer_1xb8-1080e_sunrgbd-3d.py.
# Data: SUN RGB-D v1 infos (label_v1, the paper's boxes), not create_data.py's default v2: docs/finetune.md, Data.
_base_ = ['../benchmarks/threedetr_plain-transformer-sam-mtp_1xb8-1080e_sunrgbd-3d.py']

model = dict(backbone=dict(init_cfg=None))
