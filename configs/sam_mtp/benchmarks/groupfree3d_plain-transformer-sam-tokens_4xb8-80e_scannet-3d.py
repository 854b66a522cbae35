# Scratch twin of groupfree3d_plain-transformer-sam-mtp_4xb8-80e_scannet-3d.py (same tokens, encoder and schedule,
# random init): the "GroupFree3D + Plain Transformer" row of paper Table 1 (66.1 AP25 / 48.3 AP50) with SAM-guided
# tokens.
_base_ = ['./groupfree3d_plain-transformer-sam-mtp_4xb8-80e_scannet-3d.py']

model = dict(backbone=dict(init_cfg=None))
