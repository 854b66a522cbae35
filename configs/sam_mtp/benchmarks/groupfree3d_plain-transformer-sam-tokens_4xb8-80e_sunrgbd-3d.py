# Scratch twin of groupfree3d_plain-transformer-sam-mtp_4xb8-80e_sunrgbd-3d.py (random init): paper Table 1,
# "GroupFree3D + Plain Transformer" on SUN RGB-D (62.2 AP25 / 45.0 AP50), here with SAM-guided tokens.
# Data: SUN RGB-D v1 infos (label_v1, the paper's boxes), not create_data.py's default v2: docs/finetune.md, Data.
_base_ = ['./groupfree3d_plain-transformer-sam-mtp_4xb8-80e_sunrgbd-3d.py']

model = dict(backbone=dict(init_cfg=None))
