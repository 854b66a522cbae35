"""Scene segments for fine-tuning: the registered segmenters (``segmenters``: multi-view SAM of posed frames,
single-image SAM, Stanford 2D-3D-S, geometric), their algorithms (``multi_view``, ``projection``,
``stanford_2d3ds``, ``geometric``) and the per-dataset jobs (``jobs``). ``tools/make_scene_segments.py`` is the
command line."""
