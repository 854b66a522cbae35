# GroupFree3D (6 decoder layers, 256 proposals) on ScanNetV2 (18 classes) with the SAM-MTP encoder:
# paper Table 1, row "GroupFree3D + Ours" (72.3 AP25 / 55.7 AP50). mmdet3d's own config with only the backbone
# replaced: SAM-guided tokens from scene segments, the pretrained plain transformer, a Linear to the stock
# head's 288 channels. Fine-tune on 4 GPUs x 8 scenes (mmdet3d's schedule):
#   bash tools/dist_train.sh configs/sam_mtp/benchmarks/groupfree3d_plain-transformer-sam-mtp_4xb8-80e_scannet-3d.py 4
_base_ = [
    'mmdet3d::groupfree3d/groupfree3d_head-L6-O256_4xb8_scannet-seg.py',
    '../_base_/datasets/scannet-3d_groupfree3d.py',
    '../_base_/models/sam-mtp-point-backbone.py',
]

custom_imports = dict(imports=['projects.sam_mtp'], allow_failed_imports=False)

# The backbone: groupfree3d_sam_mtp_backbone of _base_/models/sam-mtp-point-backbone.py (SAM-guided tokens, the
# stage-2 encoder, 1024 token slots, out_channels the stock head's 288) on xyz + segment id.
model = dict(backbone=dict(_base_.groupfree3d_sam_mtp_backbone, _delete_=True, in_channels=4, segment_channel=3))

# mmdet3d's pipelines with the scene segments loaded as a point column right after the points.
train_pipeline = _base_.segments_train_pipeline  # <data_root>/scene_segments/<scene>.bin
test_pipeline = _base_.segments_test_pipeline
# The stock train set is RepeatDataset(times=5, dataset=ScanNetDataset): its pipeline sits one level down.
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# The pretrained transformer trains at a tenth of the base lr (6e-4, about 3DETR's 5e-4), like the stock
# config's transformer decoder; the scratch twin uses the same optimizer so only the initialisation differs.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone.encoder': dict(lr_mult=0.1, decay_mult=1.0)}))
