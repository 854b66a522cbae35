# Stand-in label sources for demos and CI on CPU: ground-truth instance images instead of SAM (synthetic data
# and ScanNet exports with instance/ folders) and a small seeded random ViT instead of DINOv2. The files have
# the exact format of the real labels. The random ViT knows no semantics, but on the synthetic scenes, where
# every class has its own colour, its region features still carry class (docs/demo_results.md). Example:
#   python tools/generate_sam_labels.py configs/sam_mtp/labels/demo_stand_in.py \
#       --frames-root data/demo/scannet/posed_images --out-dir data/demo/scannet/sam_mtp_labels --split train \
#       --split-file data/demo/scannet/meta_data/scannetv2_train.txt --axis-align-root data/demo/scannet/scans
_base_ = ['./scannet_sam_dinov2.py']

mask_source = dict(_delete_=True, type='InstanceImageMaskSource', folder='instance', ignore_ids=(0, ))

feature_source = dict(
    _delete_=True,
    type='RandomViTFeatureSource',
    arch=dict(embed_dims=64, num_layers=2, num_heads=4, feedforward_channels=128),
    patch_size=14,
    img_size=224,
    short_side=224,
    device='cpu',
    seed=0)

# The synthetic generator writes 320x240 colour frames by default.
label_cfg = dict(mask_size=(240, 320), io_workers=2, kmeans=dict(device='cpu'), dataset_name='synthetic ScanNet')
