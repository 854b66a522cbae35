# 3DETR-m on SUN RGB-D: 3DETR with its masked encoder (facebookresearch/3detr scripts/sunrgbd_masked_ep1080.sh:
# --enc_type masked --loss_sem_cls_weight 0.8). Everything else is threedetr_vanilla-encoder_1xb8-1080e_sunrgbd-3d.py.
# Data: SUN RGB-D v1 infos (label_v1, the paper's boxes), not create_data.py's default v2: docs/finetune.md, Data.
_base_ = ['./threedetr_vanilla-encoder_1xb8-1080e_sunrgbd-3d.py']

model = dict(
    backbone=dict(type='ThreeDETRMaskedEncoder'),
    bbox_head=dict(
        num_memory_proj_hidden=1,
        loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=False, loss_weight=0.8)))
