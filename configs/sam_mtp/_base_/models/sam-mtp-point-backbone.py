# Shared pieces of the fine-tuning configs: the pretrained encoder, its checkpoint, the tokenizer and backbone presets
# of SamMtpPointBackbone and the token segmentation head. Method constants live here once; every fine-tuning config
# under configs/sam_mtp/benchmarks/, ablations/ and demo/ reads them. No custom_imports here: the task configs (or
# the baseline configs they inherit) set it, and mmengine refuses a key defined by two bases.
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
# INFERENCE (paper: "SAM-guided tokenization is also used in fine-tuning", nothing more; docs/design_choices.md#q1,
# docs/design_choices.md#q10); they are the fixed token slots of the heads, and segments beyond a cap merge into
# their nearest kept segment.
det_sam_tokenizer = dict(type='SAMGuidedTokenizer', num_points_per_token=128, min_points=16, max_tokens=1024,
                         max_fallback_tokens=512, fallback_size=64)
# Bridge3D's 3DETR fine-tuning tokens (Bridge3D's `Downstream/3detr`): 2048 FPS centres x 128 nearest points.
det_knn_tokenizer = dict(type='FPSKNNTokenizer', num_tokens=2048, num_points_per_token=128)
# Segmentation patches (mmdet3d's protocol: 8192 points in 1.5 m columns on ScanNet, 4096 in 1 m on S3DIS).
seg_sam_tokenizer = dict(det_sam_tokenizer, num_points_per_token=32, min_points=8, max_tokens=256,
                         max_fallback_tokens=192, fallback_size=32)
seg_knn_tokenizer = dict(type='FPSKNNTokenizer', num_tokens=256, num_points_per_token=32)

# The backbones of the "+ Ours" rows: SamMtpPointBackbone with SAM-guided tokens and the encoder loaded from
# pretrained_checkpoint. A fine-tuning config replaces its task's backbone with one of them and adds what its data
# decides (dict(_base_.<preset>, _delete_=True, in_channels=..., segment_channel=...)); the scratch twins set
# init_cfg=None, the rival rows swap in their tokens and checkpoints.
sam_mtp_init_cfg = dict(type='Pretrained', checkpoint=pretrained_checkpoint, prefix='backbone.')
# GroupFree3D: a Linear to the stock head's 288 channels; its KPS takes the top 256 of the token slots, a fixed
# 1024 slots padded with copies of real tokens (scenes have different token counts).
groupfree3d_sam_mtp_backbone = dict(type='SamMtpPointBackbone', tokenizer=det_sam_tokenizer, encoder=sam_mtp_encoder,
                                    out_channels=288, num_output_tokens=1024, init_cfg=sam_mtp_init_cfg)
# ... and its "+Point-MAE" row: FPS/kNN tokens (no segment column, one slot per FPS centre), the encoder from
# Point-MAE pretraining (the "+Bridge3D" row changes the checkpoint).
groupfree3d_point_mae_backbone = dict(groupfree3d_sam_mtp_backbone, tokenizer=det_knn_tokenizer, segment_channel=None,
                                      num_output_tokens=det_knn_tokenizer['num_tokens'],
                                      init_cfg=dict(sam_mtp_init_cfg, checkpoint=point_mae_checkpoint))
# TokenInterpolationSegHead: the segment id is column 6 (after xyz, rgb); >= 3 token slots for its 3-NN
# interpolation, padded slots masked by the head.
tokeninterp_sam_mtp_backbone = dict(type='SamMtpPointBackbone', tokenizer=seg_sam_tokenizer, encoder=sam_mtp_encoder,
                                    segment_channel=6, num_output_tokens=seg_sam_tokenizer['max_tokens'],
                                    init_cfg=sam_mtp_init_cfg)
# 3DETR (xyz only on both datasets): Bridge3D's fine-tuning encoder adds the centre embedding once at the input
# (Bridge3D's `Downstream/3detr`), with the same weights as in pretraining. The "+ Plain Transformer" row: random
# initialisation, Bridge3D's FPS/kNN tokens; "+ Ours": the stage-2 encoder, SAM-guided tokens (xyz + segment id).
threedetr_plain_backbone = dict(type='SamMtpPointBackbone', tokenizer=det_knn_tokenizer,
                                encoder=dict(sam_mtp_encoder, pos_every_block=False), in_channels=3)
threedetr_sam_mtp_backbone = dict(threedetr_plain_backbone, tokenizer=det_sam_tokenizer, in_channels=4,
                                  segment_channel=3, init_cfg=sam_mtp_init_cfg)

# The segmentation head of the tokeninterp configs: token features interpolated back to the points (3 nearest
# tokens), concatenated with each point's features (point_channels, the config's), classified by a per-point MLP.
tokeninterp_head = dict(type='TokenInterpolationSegHead', in_channels=sam_mtp_encoder['embed_dims'],
                        mlp_channels=(256, 128), dropout_ratio=0.5, conv_cfg=dict(type='Conv1d'),
                        norm_cfg=dict(type='BN1d'), act_cfg=dict(type='ReLU'))
