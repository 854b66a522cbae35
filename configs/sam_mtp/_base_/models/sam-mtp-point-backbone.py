# Shared pieces of the fine-tuning configs: the pretrained encoder, its checkpoint and the tokenizer presets of
# SamMtpPointBackbone. Method constants live here once; every fine-tuning config under configs/sam_mtp/benchmarks/,
# ablations/ and demo/ reads them. No custom_imports here: the task configs (or the baseline configs they inherit)
# set it, and mmengine refuses a key defined by two bases.
_base_ = ['./plain-point-transformer.py']

# The stage-2 student (or a stage-1 model) of configs/sam_mtp/pretrain/sam-mtp-stage{1,2}_*.py, in the stage-2
# config's default work dir. Both keep the encoder under "backbone."; SamMtpPointBackbone loads it strictly into its
# "encoder" (same keys, 1:1). Change it with --cfg-options model.backbone.init_cfg.checkpoint=PATH.
pretrained_checkpoint = 'work_dirs/sam-mtp-stage2_plain-transformer_4xb16-120e_scannet-frames/epoch_120.pth'
# The rival pretraining methods of the paper's "+Point-MAE" / "+Bridge3D" rows pretrain the same encoder (same keys
# under "backbone."); their fine-tuning configs (*-point-mae_*, *-bridge3d_*) start from these checkpoints.
point_mae_checkpoint = 'work_dirs/point-mae_plain-transformer_8xb8-120e_scannet-frames/epoch_120.pth'
bridge3d_checkpoint = 'work_dirs/bridge3d_plain-transformer_8xb8-120e_scannet-frames/epoch_120.pth'

# The pretraining encoder (./plain-point-transformer.py, inherited, not restated), with the centre embedding added
# before every block as in pretraining. The 3DETR configs add it once at the input instead (pos_every_block=False,
# as Bridge3D's 3DETR fine-tuning does); the weights are the same.
sam_mtp_encoder = dict(_base_.plain_point_transformer, pos_every_block=True)

# Scene-level SAM segments: LoadSceneSegments reads <data_root>/scene_segments/<scene>.bin (one int64 per point
# of points/<scene>.bin, -1 = none), written by tools/make_scene_segments.py for ScanNet, SUN RGB-D and S3DIS
# (configs/sam_mtp/segments/, docs/finetune.md).

# SAM-guided tokens on whole detection scenes (40k-50k points): one token per scene segment (>= 16 points,
# 128 sampled per token); unassigned points form fallback FPS cells of about 64 points. The caps are an
# INFERENCE (paper: "SAM-guided tokenization is also used in fine-tuning", nothing more; docs/design_choices.md#q1, docs/design_choices.md#q10); they are
# the fixed token slots of the heads, and segments beyond a cap merge into their nearest kept segment.
det_sam_tokenizer = dict(
    type='SAMGuidedTokenizer',
    num_points_per_token=128,
    min_points=16,
    max_tokens=1024,
    max_fallback_tokens=512,
    fallback_size=64)
# Bridge3D's 3DETR fine-tuning tokens (Bridge3D's `Downstream/3detr`): 2048 FPS centres x 128 nearest points.
det_knn_tokenizer = dict(type='FPSKNNTokenizer', num_tokens=2048, num_points_per_token=128)

# Segmentation patches (mmdet3d's protocol: 8192 points in 1.5 m columns on ScanNet, 4096 in 1 m on S3DIS).
seg_sam_tokenizer = dict(
    type='SAMGuidedTokenizer',
    num_points_per_token=32,
    min_points=8,
    max_tokens=256,
    max_fallback_tokens=192,
    fallback_size=32)
seg_knn_tokenizer = dict(type='FPSKNNTokenizer', num_tokens=256, num_points_per_token=32)
