"""Frame labels for pretraining: SAM regions and DINOv2 region features per frame (pass a, ``generation``),
K-means groups over a split (pass b, ``merge``), Bridge3D's text labels (``text_labels``) and label statistics
(``stats``). ``tools/generate_sam_labels.py`` is the command line."""
