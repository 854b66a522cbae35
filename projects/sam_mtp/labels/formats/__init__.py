"""The files of the label pipelines; one module per format owns its layout, constants, readers and writers:

* ``frame_labels``: a label root (per-frame ``.npz`` labels, split info, groups, region maps, recorded settings).
* ``scene_segments``: a scene-segment file (one int64 id per point) and its JSON sidecar.
* ``frames``: posed RGB-D frame folders (export and flat layouts) and ScanNet's scene meta file.
* ``sens``: ScanNet's ``.sens`` recordings.
"""
