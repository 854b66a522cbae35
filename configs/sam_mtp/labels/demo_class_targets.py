# The CPU demo's label sources (tools/demo.py): ground-truth instance images as STAND-IN SAM masks and, as
# STAND-IN DINOv2 features, a fixed random embedding of each pixel's semantic class plus Gaussian noise, so that
# the region targets carry class information as DINOv2's do on real images (issue: "targets that carry class
# information"). The files have the exact format of the real labels. demo_stand_in.py keeps the random-ViT
# feature source that exercises DINOv2's code path.
_base_ = ['./demo_stand_in.py']

feature_source = dict(_delete_=True, type='ClassEmbeddingFeatureSource', feature_dim=64, noise_std=0.5,
                      folder='label', stride=8, seed=0)
