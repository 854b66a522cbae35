# Table 3 row 4, stage 2 at demo scale: ../../ablations/t3-r4_stage2_knn-tokens.py's switch on ../stage2_demo.py;
# teacher = stage1_knn-tokens_demo.py's checkpoint.
_base_ = ['../stage2_demo.py']

demo_knn_tokenizer = dict(type='FPSKNNTokenizer', num_tokens=128, num_points_per_token=64)
model = dict(
    tokenizer=dict(_delete_=True, **demo_knn_tokenizer),
    teacher=dict(tokenizer=dict(_delete_=True, **demo_knn_tokenizer)))
