# Scratch twin of tokeninterp_plain-transformer-sam-mtp_2xb16-200e_scannet-seg.py (random init): paper Table 2,
# "Plain Transformer" on ScanNetV2 (67.3 mIoU / 73.1 mAcc), here with SAM-guided tokens.
_base_ = ['./tokeninterp_plain-transformer-sam-mtp_2xb16-200e_scannet-seg.py']

model = dict(backbone=dict(init_cfg=None))
