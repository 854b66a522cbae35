# Ablation (not a paper row): ../benchmarks/threedetr_plain-transformer-sam-mtp_1xb8-1080e_scannet-3d.py from random
# initialisation, i.e. SAM-guided tokens and token queries without pretraining. Compare with
# ../benchmarks/threedetr_plain-transformer_1xb8-1080e_scannet-3d.py (the paper's "+Plain Transformer" row: kNN
# tokens, FPS queries) to separate the tokenization's share of the gain from pretraining's.
_base_ = ['../benchmarks/threedetr_plain-transformer-sam-mtp_1xb8-1080e_scannet-3d.py']

model = dict(backbone=dict(init_cfg=None))
