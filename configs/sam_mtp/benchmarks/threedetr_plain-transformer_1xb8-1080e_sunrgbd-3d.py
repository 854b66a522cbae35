# 3DETR + Plain Transformer on SUN RGB-D: paper Table 1 (57.6 AP25 / 31.9 AP50). The baseline
# threedetr_vanilla-encoder_1xb8-1080e_sunrgbd-3d.py with only 3DETR's encoder replaced (Bridge3D's 2048 FPS/kNN
# tokens and plain transformer, random initialisation, FPS-sampled queries).
#   python tools/train.py configs/sam_mtp/benchmarks/threedetr_plain-transformer_1xb8-1080e_sunrgbd-3d.py
# Data: SUN RGB-D v1 infos (label_v1, the paper's boxes), not create_data.py's default v2: docs/finetune.md, Data.
_base_ = ['./threedetr_vanilla-encoder_1xb8-1080e_sunrgbd-3d.py', '../_base_/models/sam-mtp-point-backbone.py']

model = dict(backbone=dict(_base_.threedetr_plain_backbone, _delete_=True),
             bbox_head=dict(in_channels=_base_.sam_mtp_encoder['embed_dims']))
