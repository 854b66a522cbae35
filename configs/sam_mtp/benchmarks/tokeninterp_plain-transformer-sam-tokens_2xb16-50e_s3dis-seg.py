# Scratch twin of tokeninterp_plain-transformer-sam-mtp_2xb16-50e_s3dis-seg.py (random init): paper Table 2,
# "Plain Transformer" on S3DIS (61.1 mIoU / 67.2 mAcc), also Table 3's first row, here with SAM-guided tokens.
_base_ = ['./tokeninterp_plain-transformer-sam-mtp_2xb16-50e_s3dis-seg.py']

model = dict(backbone=dict(init_cfg=None))
