# Semantic segmentation on ScanNetV2 (20 classes) with the SAM-MTP encoder: paper Table 2, row "Plain
# Transformer + Ours" (75.4 mIoU / 81.5 mAcc). mmdet3d's EncoderDecoder3D with its ScanNet protocol (PointNet++
# config: 8192-point 1.5 m patches, class-weighted cross-entropy, sliding-window test over whole scenes); the
# backbone is SamMtpPointBackbone (SAM-guided tokens of the scene segments in each patch) and the head
# interpolates token features back to the points (3 nearest tokens) and concatenates each point's colour.
# The paper gives no segmentation settings (docs/design_choices.md#q11): the optimizer below is an INFERENCE.
#   bash tools/dist_train.sh \
#       configs/sam_mtp/benchmarks/tokeninterp_plain-transformer-sam-mtp_2xb16-200e_scannet-seg.py 2
_base_ = [
    'mmdet3d::pointnet2/pointnet2_ssg_2xb16-cosine-200e_scannet-seg.py',
    '../_base_/datasets/scannet-seg_tokeninterp.py',
    '../_base_/models/sam-mtp-point-backbone.py',
    '../_base_/schedules/tokeninterp_adamw.py',
]

num_classes = 20  # NYU40 ids mapped to the benchmark's classes (PointSegClassMapping)
max_epochs = 200  # mmdet3d's
# The presets of _base_/models/sam-mtp-point-backbone.py: the SAM-token backbone with the stage-2 encoder and the
# token interpolation head.
model = dict(
    backbone=dict(_base_.tokeninterp_sam_mtp_backbone, _delete_=True, in_channels=7),  # xyz, rgb, segment id
    decode_head=dict(_base_.tokeninterp_head, _delete_=True, point_channels=3,  # normalised colour
                     num_classes=num_classes, ignore_index=num_classes,
                     loss_decode=_base_.model.decode_head.loss_decode))  # mmdet3d's ScanNet class weights

# The segments column is loaded right after the points; the test pipeline also maps the NYU40 labels to the 20
# classes (_base_/datasets/scannet-seg_tokeninterp.py says why).
train_pipeline = _base_.segments_train_pipeline  # <data_root>/scene_segments/<scene>.bin
test_pipeline = _base_.segments_test_pipeline
# mmdet3d 1.4.0's scannet-seg.py gives scene_idxs as data_root + 'seg_info/...', and ScanNetSegDataset joins
# it with data_root again; the path is relative to data_root.
train_dataloader = dict(dataset=dict(pipeline=train_pipeline, scene_idxs='seg_info/train_resampled_scene_idxs.npy'))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# INFERENCE: AdamW at 3DETR's fine-tuning lr (_base_/schedules/tokeninterp_adamw.py) with 5 warm-up epochs, cosine
# over mmdet3d's 200 epochs.
optim_wrapper = dict(_base_.tokeninterp_optim_wrapper, _delete_=True)
param_scheduler = [dict(_base_.lr_warmup, end=5), dict(_base_.lr_cosine, begin=5, T_max=max_epochs - 5, end=max_epochs)]
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
