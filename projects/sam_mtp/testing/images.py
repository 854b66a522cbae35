"""Synthetic images: Voronoi region maps (stand-ins for SAM's masks) and flat-coloured frames made of them."""
import numpy as np


def voronoi_regions(height: int, width: int, count: int, seed: int = 1) -> np.ndarray:
    """(H, W) int64 region map of ``count`` Voronoi cells around random seed pixels, ids 1..count."""
    rng = np.random.default_rng(seed)
    seeds = rng.uniform((0, 0), (height, width), (count, 2))
    yy, xx = np.mgrid[0:height, 0:width]
    dist = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    return dist.argmin(-1).astype(np.int64) + 1


def voronoi_image(height: int, width: int, count: int = 60) -> np.ndarray:
    """An RGB uint8 frame of flat-coloured Voronoi cells (edges for SAM to find, also with random weights)."""
    regions = voronoi_regions(height, width, count)
    colours = np.random.default_rng(0).integers(0, 256, (regions.max() + 1, 3), dtype=np.uint8)
    return colours[regions]
