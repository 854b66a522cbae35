# Semantic segmentation on ScanNet v2 (20 classes) with TokenInterpolationSegHead: encoder tokens are brought
# back to every point by three-NN inverse-distance interpolation, concatenated with the point colours and
# classified by a per-point MLP. Reference encoder: mmdet3d's PointNet++ (SSG) whose feature propagation stops
# at 1024 tokens; SAM-MTP swaps in the pretrained transformer (docs/downstream.md). Data, schedule and sliding-
# window testing are mmdet3d's PointNet++ ScanNet segmentation recipe.
_base_ = ['mmdet3d::pointnet2/pointnet2_ssg_2xb16-cosine-200e_scannet-seg.py']

custom_imports = dict(
    imports=['projects.sam_mtp', 'projects.sam_mtp.models.heads'], allow_failed_imports=False)

model = dict(
    # Three feature-propagation steps from the coarsest level back to the 1024 first-level points.
    backbone=dict(fp_channels=((256, 256), (256, 256), (256, 256))),
    decode_head=dict(
        _delete_=True,
        type='TokenInterpolationSegHead',
        in_channels=256,
        point_channels=3,  # rgb; the backbone exposes them as sa_features[0]
        mlp_channels=(256, 128),
        num_classes=20,
        ignore_index=20,
        dropout_ratio=0.5,
        conv_cfg=dict(type='Conv1d'),
        norm_cfg=dict(type='BN1d'),
        act_cfg=dict(type='ReLU'),
        loss_decode=dict(
            type='mmdet.CrossEntropyLoss',
            use_sigmoid=False,
            # mmdet3d's per-class weights from its ScanNet preprocessing (train_label_weight.npy).
            class_weight={{_base_.model.decode_head.loss_decode.class_weight}},
            loss_weight=1.0)))
