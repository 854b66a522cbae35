# 3DETR + Plain Transformer on ScanNetV2: paper Table 1 (61.1 AP25 / 38.6 AP50) and Table 3's first row. The
# baseline threedetr_vanilla-encoder_1xb8-1080e_scannet-3d.py with only 3DETR's encoder replaced, as Bridge3D's
# 3DETR fine-tuning does: 2048 FPS/kNN tokens of 128 points, the plain transformer (3 blocks, 256-d) with the
# centre embedding added once, random initialisation, FPS-sampled queries.
#   python tools/train.py configs/sam_mtp/benchmarks/threedetr_plain-transformer_1xb8-1080e_scannet-3d.py
_base_ = ['./threedetr_vanilla-encoder_1xb8-1080e_scannet-3d.py', '../_base_/models/sam-mtp-point-backbone.py']

# The backbone: threedetr_plain_backbone of _base_/models/sam-mtp-point-backbone.py (xyz, FPS/kNN tokens, the
# centre embedding added once at the input, as Bridge3D's `Downstream/3detr`).
model = dict(backbone=dict(_base_.threedetr_plain_backbone, _delete_=True),
             bbox_head=dict(in_channels=_base_.sam_mtp_encoder['embed_dims']))
