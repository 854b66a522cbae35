# Scratch twin of tokenseg_sam-mtp-ft_scannet-seg.py (random init): paper Table 2, "Plain Transformer" on
# ScanNetV2 (67.3 mIoU / 73.1 mAcc), here with SAM-guided tokens.
_base_ = ['./tokenseg_sam-mtp-ft_scannet-seg.py']

model = dict(backbone=dict(init_cfg=None))
