"""numba.core of the stand-in: only ``errors`` (mmdet3d filters one of its warnings at import)."""
