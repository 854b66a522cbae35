# Bridge3D pretraining on the CPU demo data, at the demo's scale (../_base_/demo_scale.py: the demo encoder, 8192
# points per frame, stand-in labels). The labels need the text targets first (stand-in CLIP text tower, class maps
# from the synthetic ground truth, captions listing the classes present):
#   python tools/add_text_labels.py configs/sam_mtp/labels/bridge3d_text_demo.py \
#       --labels-root data/demo/scannet/sam_mtp_labels --split train --frames-root data/demo/scannet/posed_images
_base_ = ['../pretrain/bridge3d_plain-transformer_8xb8-120e_scannet-frames.py', '../_base_/demo_scale.py']

embed_dims = _base_.demo_encoder_size['embed_dims']
demo_text_feature_dim = 32  # RandomCLIPTextFeatureSource's (configs/sam_mtp/labels/bridge3d_text_demo.py)
model = dict(
    tokenizer=_base_.demo_knn_tokenizer,  # 8192 points per frame: 128 FPS centres x 64 neighbours
    backbone=_base_.demo_encoder_size,
    global_queries=dict(embed_dims=embed_dims, num_layers=_base_.demo_encoder_size['num_layers']),
    decoder=dict(in_channels=embed_dims, embed_dims=embed_dims),
    reconstruction_head=dict(in_channels=embed_dims),
    region_image_head=dict(in_channels=embed_dims, out_channels=_base_.demo_feature_dim),
    region_text_head=dict(in_channels=embed_dims, out_channels=demo_text_feature_dim),
    scene_image_head=dict(in_channels=embed_dims, out_channels=_base_.demo_feature_dim),
    scene_text_head=dict(in_channels=embed_dims, out_channels=demo_text_feature_dim))
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=_base_.demo_data_root, cache_frames=True,
                 pipeline=_base_.demo_bridge3d_train_pipeline))
param_scheduler = [dict(_base_.lr_warmup, **_base_.demo_lr_warmup), dict(_base_.lr_cosine, **_base_.demo_lr_cosine)]
train_cfg = _base_.demo_train_cfg
default_hooks = _base_.demo_default_hooks
log_processor = _base_.demo_log_processor
randomness = _base_.demo_randomness  # seeded, with torch's deterministic CPU kernels
