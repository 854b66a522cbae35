# 3DETR + Ours on ScanNetV2: paper Table 1 (68.2 AP25 / 48.4 AP50), also the last row of Tables 3 and 4.
# 3detr_plain-transformer_scannet-3d.py (itself 3DETR's recipe with the plain transformer) with SAM-MTP's three
# changes: the encoder starts from the stage-2 checkpoint, SAM-guided tokens from scene segments replace FPS/kNN
# groups ("SAM-guided tokenization is also used in fine-tuning"), and those tokens are the decoder queries ("we use
# the tokens generated through SAM-guided tokenization as queries"). Needs data/scannet/scene_segments/.
#   python tools/train.py configs/sam_mtp/finetune/3detr_sam-mtp-ft_scannet-3d.py \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/stage2_scannet/epoch_120.pth
_base_ = ['./3detr_plain-transformer_scannet-3d.py']

model = dict(
    backbone=dict(
        tokenizer=dict(_delete_=True, **_base_.det_sam_tokenizer),
        in_channels=4,  # xyz + segment id
        segment_channel=3,
        init_cfg=dict(type='Pretrained', checkpoint=_base_.pretrained_checkpoint, prefix='backbone.')),
    # SAM-MTP: the SAM tokens are the queries (no new query embeddings), capped at num_queries by FPS.
    bbox_head=dict(query_source='tokens'))

# The scene segments join the points as a column right after loading, so crops and sampling carry them along.
load_segments = dict(type='LoadSceneSegments')  # <data_root>/scene_segments/<scene>.bin
train_pipeline = _base_.train_pipeline[:1] + [load_segments] + _base_.train_pipeline[1:]
test_pipeline = _base_.test_pipeline[:1] + [load_segments] + _base_.test_pipeline[1:]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
