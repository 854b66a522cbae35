# Offline labels of SAM-MTP for ScanNet (paper §3.3-3.4; docs/labels.md): SAM ViT-H automatic masks with Bridge3D's
# settings, DINOv2 ViT-B/14 region features on the full frame, K = 32 K-means groups. Used by
#   python tools/generate_sam_labels.py configs/sam_mtp/labels/scannet_sam_dinov2.py \
#       --frames-root data/scannet/posed_images --out-dir data/scannet/sam_mtp_labels --split train \
#       --split-file data/scannet/meta_data/scannetv2_train.txt --axis-align-root data/scannet/scans
# Checkpoint paths are relative to the working directory (see docs/labels.md for the downloads).
mask_source = dict(
    type='SAMAutomaticMaskSource',
    checkpoint='checkpoints/sam_vit_h_4b8939.pth',
    model_type='vit_h',
    device='cuda',
    points_per_side=32,
    points_per_batch=64,
    pred_iou_thresh=0.86,
    stability_score_thresh=0.92,
    crop_n_layers=1,
    crop_n_points_downscale_factor=2,
    min_mask_region_area=100)

feature_source = dict(
    type='DINOv2FeatureSource',
    checkpoint='checkpoints/vit-base-p14_dinov2-pre_3rdparty_20230426-ba246503.pth',
    arch='base',
    patch_size=14,
    img_size=518,
    layer_scale_init_value=1e-5,
    short_side=448,  # 968x1296 colour -> 448x602 input -> 32x43 patch grid
    interpolate_offset=0.1,  # resize the 37x37 position embedding as the official DINOv2 model does
    device='cuda',
    fp16=False)

label_cfg = dict(
    frame_stride=25,  # ~78k frames of the train split (paper §4.1)
    num_points=20000,  # Bridge3D's points per frame (docs/design_choices.md#q7)
    mask_size=(480, 640),  # SAM runs on the colour frame resized to 640x480, as in Bridge3D
    depth_scale=1000.0,
    max_depth=None,
    num_groups=32,  # docs/design_choices.md#q5
    seed=0,
    save_region_maps=True,
    max_failure_fraction=0.05,
    io_workers=4,
    kmeans=dict(max_samples=131072, n_init=3, max_iter=100, tol=1e-6, device='cuda'),
    dataset_name='ScanNet')

# Scene segments of the reconstructed scenes (fine-tuning, docs/design_choices.md#q1) are made by tools/make_scene_segments.py
# with configs/sam_mtp/segments/scannet_sam_multiview.py, which reuses this file's mask_source.
