# 3DETR + Ours on ScanNetV2: paper Table 1 (68.2 AP25 / 48.4 AP50), also the last row of Tables 3 and 4.
# threedetr_plain-transformer_1xb8-1080e_scannet-3d.py (3DETR's recipe with the plain transformer) with SAM-MTP's
# three changes: the encoder starts from the stage-2 checkpoint, SAM-guided tokens from scene segments replace
# FPS/kNN groups ("SAM-guided tokenization is also used in fine-tuning"), and those tokens are the decoder queries
# ("we use the tokens generated through SAM-guided tokenization as queries"). Needs data/scannet/scene_segments/.
#   python tools/train.py configs/sam_mtp/benchmarks/threedetr_plain-transformer-sam-mtp_1xb8-1080e_scannet-3d.py
# (the encoder: _base_/models/sam-mtp-point-backbone.py's pretrained_checkpoint, the stage-2 config's last
# checkpoint; --cfg-options model.backbone.init_cfg.checkpoint=PATH for another one).
_base_ = ['./threedetr_vanilla-encoder_1xb8-1080e_scannet-3d.py', '../_base_/models/sam-mtp-point-backbone.py']

# The backbone: threedetr_sam_mtp_backbone of _base_/models/sam-mtp-point-backbone.py (xyz + segment id, SAM-guided
# tokens, the stage-2 encoder with the centre embedding added once at the input, as Bridge3D's `Downstream/3detr`).
# SAM-MTP: the SAM tokens are the queries (no new query embeddings), capped at num_queries by FPS.
model = dict(backbone=dict(_base_.threedetr_sam_mtp_backbone, _delete_=True),
             bbox_head=dict(in_channels=_base_.sam_mtp_encoder['embed_dims'], query_source='tokens'))

# The scene segments join the points as a column right after loading, so crops and sampling carry them along.
train_pipeline = _base_.segments_train_pipeline
test_pipeline = _base_.segments_test_pipeline
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
