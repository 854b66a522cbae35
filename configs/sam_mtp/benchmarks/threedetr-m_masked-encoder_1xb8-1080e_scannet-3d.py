# 3DETR-m on ScanNetV2: 3DETR with its masked encoder (facebookresearch/3detr scripts/scannet_masked_ep1080.sh:
# --enc_type masked --enc_dropout 0.3). Radius-masked attention, a set abstraction to 1024 tokens after the
# first layer, and one hidden layer fewer in the encoder-to-decoder projection. Everything else is
# threedetr_vanilla-encoder_1xb8-1080e_scannet-3d.py.
_base_ = ['./threedetr_vanilla-encoder_1xb8-1080e_scannet-3d.py']

model = dict(
    backbone=dict(type='ThreeDETRMaskedEncoder', dropout=0.3),
    bbox_head=dict(num_memory_proj_hidden=1))
