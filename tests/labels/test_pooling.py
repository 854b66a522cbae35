"""Region pooling equals pooling of the explicitly up-sampled feature map (brute force)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from projects.sam_mtp.labels.frame_labels.pooling import pool_region_features


def _brute_force(features, region_map, num_regions):
    up = F.interpolate(features[None].double(), size=region_map.shape, mode='bilinear', align_corners=False)[0]
    mean = torch.zeros(num_regions, features.shape[0], dtype=torch.float64)
    peak = torch.zeros(num_regions, features.shape[0], dtype=torch.float64)
    for r in range(1, num_regions + 1):  # loop over regions: reference only
        inside = torch.from_numpy(region_map == r)
        if inside.any():
            mean[r - 1] = up[:, inside].mean(1)
            peak[r - 1] = up[:, inside].amax(1)
    return mean, peak


@pytest.mark.parametrize('map_hw,grid_hw,blocks', [
    ((48, 64), (4, 5), 8),       # up-sampling like DINOv2 -> mask (x ~12)
    ((37, 53), (5, 7), 1),       # non-integer factors, pixel-level noise regions
    ((20, 20), (30, 25), 2),     # down-sampling
    ((1, 13), (3, 4), 1),        # a single row
    ((30, 40), (30, 40), 5),     # same size
])
def test_pooling_matches_upsampled_reference(map_hw, grid_hw, blocks):
    rng = np.random.default_rng(sum(map_hw) + sum(grid_hw))
    features = torch.from_numpy(rng.normal(size=(6, ) + grid_hw)).float()
    coarse = rng.integers(0, 7, (-(-map_hw[0] // blocks), -(-map_hw[1] // blocks)))
    region_map = np.kron(coarse, np.ones((blocks, blocks), int))[:map_hw[0], :map_hw[1]]
    mean, peak = pool_region_features(features, region_map, 8, channel_chunk=4)
    ref_mean, ref_peak = _brute_force(features, region_map, 8)
    assert mean.shape == peak.shape == (8, 6) and mean.dtype == torch.float32
    torch.testing.assert_close(mean.double(), ref_mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(peak.double(), ref_peak, atol=1e-5, rtol=1e-5)
    absent = ~np.isin(np.arange(1, 9), region_map)
    assert (mean[torch.from_numpy(absent)] == 0).all()  # ids without pixels (7, 8, maybe more) get zeros


def test_pooling_smooth_regions_and_torch_input():
    """Voronoi-like regions as SAM produces them, given as a torch map, and the default region count."""
    rng = np.random.default_rng(0)
    seeds = rng.uniform([0, 0], [60, 80], (12, 2))
    yy, xx = np.mgrid[:60, :80]
    region_map = np.argmin(((np.stack([yy, xx], -1)[:, :, None] - seeds) ** 2).sum(-1), -1) + 1
    region_map[:10, :10] = 0
    features = torch.randn(5, 5, 6)
    mean, peak = pool_region_features(features, torch.from_numpy(region_map))
    ref_mean, ref_peak = _brute_force(features, region_map, 12)
    torch.testing.assert_close(mean.double(), ref_mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(peak.double(), ref_peak, atol=1e-5, rtol=1e-5)


def test_pooling_rejects_bad_input():
    with pytest.raises(ValueError, match=r'features must have shape \(D, h, w\)'):
        pool_region_features(torch.zeros(2, 3), np.zeros((4, 4), int))
    with pytest.raises(ValueError, match=r'region_map must have shape \(H, W\)'):
        pool_region_features(torch.zeros(2, 3, 3), np.zeros((4, 4, 1), int))
    with pytest.raises(ValueError, match='negative'):
        pool_region_features(torch.zeros(2, 3, 3), -np.ones((4, 4), int))
    mean, peak = pool_region_features(torch.zeros(2, 3, 3), np.zeros((4, 4), int))
    assert mean.shape == peak.shape == (0, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_pooling_on_cuda_matches_cpu():
    rng = np.random.default_rng(0)
    features = torch.randn(8, 5, 7)
    region_map = np.kron(rng.integers(0, 5, (6, 8)), np.ones((6, 6), int))
    cpu = pool_region_features(features, region_map)
    gpu = pool_region_features(features.cuda(), torch.from_numpy(region_map).cuda())
    for a, b in zip(cpu, gpu):
        assert b.device.type == 'cuda'
        torch.testing.assert_close(a, b.cpu(), atol=1e-5, rtol=1e-5)
