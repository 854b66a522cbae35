"""SAM-guided and FPS+kNN tokenizers against brute-force references and invariants."""
import math

import numpy as np
import pytest
import torch

from projects.sam_mtp.models.tokenizers import (
    FPSKNNTokenizer,
    SAMGuidedTokenizer,
    group_centroids,
    sample_group_members,
)
from projects.sam_mtp.models.tokenizers.fps_knn_tokenizer import knn_indices


def _padded_batch(sizes_per_sample, num_unassigned, seed=0, extra_padding=(0, 0)):
    """Points (B, N, 3) and point_region (B, N) with -1 padding; region r has sizes[r-1] points."""
    rng = np.random.default_rng(seed)
    clouds, labels = [], []
    for sizes, n_u, pad in zip(sizes_per_sample, num_unassigned, extra_padding):
        pts = [rng.normal(rng.uniform(-3, 3, 3), 0.3, size=(s, 3)) for s in sizes]
        pts.append(rng.uniform(-4, 4, size=(n_u, 3)))
        reg = np.concatenate([np.full(s, r) for r, s in enumerate(sizes, 1)] + [np.zeros(n_u)])
        order = rng.permutation(len(reg))
        clouds.append(np.concatenate(pts)[order])
        labels.append(reg[order])
        clouds[-1] = np.concatenate([clouds[-1], np.zeros((pad, 3))])
        labels[-1] = np.concatenate([labels[-1], -np.ones(pad)])
    n_max = max(len(c) for c in clouds)
    points = np.zeros((len(clouds), n_max, 3), np.float32)
    region = -np.ones((len(clouds), n_max), np.int64)
    for b, (c, r) in enumerate(zip(clouds, labels)):
        points[b, :len(c)] = c
        region[b, :len(r)] = r
    return torch.from_numpy(points), torch.from_numpy(region)


def _members_of_token(tokens, b, t, points):
    return points[b][tokens.point_token[b] == t]


def _assert_sampled_from_members(tokens, points, b, t, atol=1e-5):
    """Every sampled point of token t (neighbourhood + centre) is one of the token's member points."""
    members = _members_of_token(tokens, b, t, points)
    sampled = tokens.neighborhoods[b, t] + tokens.centers[b, t]
    dist = (sampled.double()[:, None] - members.double()[None]).norm(dim=-1)
    assert float(dist.min(dim=1).values.max()) < atol
    return members, dist.argmin(dim=1)


def test_sam_tokenizer_partition_centroids_and_counts():
    sizes = [[40, 12, 25, 3, 70], [30, 18, 16]]  # regions of 12 and 3 points are below min_points=16
    points, region = _padded_batch(sizes, num_unassigned=[50, 0], extra_padding=(0, 7))
    tok = SAMGuidedTokenizer(num_points_per_token=32, min_points=16, max_tokens=20, max_fallback_tokens=8)
    tok.train()
    torch.manual_seed(0)
    tokens = tok(points, region)
    B, M, S = tokens.neighborhoods.shape[:3]
    assert S == 32 and tokens.point_token.shape == region.shape
    # sample 0: regions 1, 3, 5 kept; unassigned = 50 + 12 + 3 = 65 points -> ceil(65 / 32) = 3 fallback tokens
    # sample 1: regions 1, 2, 3 kept (16 >= min_points), no unassigned point -> no fallback
    assert tokens.region_index[0].tolist()[:6] == [1, 3, 5, 0, 0, 0]
    assert tokens.num_tokens.tolist() == [6, 3]
    assert tokens.region_index[1].tolist() == [1, 2, 3, -1, -1, -1]
    assert tokens.padding_mask[1].tolist() == [False] * 3 + [True] * 3
    assert torch.all(tokens.neighborhoods[1, 3:] == 0) and torch.all(tokens.centers[1, 3:] == 0)
    # padding points belong to no token
    assert torch.all(tokens.point_token[region == -1] == -1)
    for b in range(B):
        valid = region[b] >= 0
        # every valid point of a kept region is in exactly the token of its region
        for t in range(int(tokens.num_tokens[b])):
            rid = int(tokens.region_index[b, t])
            members, _ = _assert_sampled_from_members(tokens, points, b, t)
            if rid > 0:
                brute = points[b][region[b] == rid]
                assert len(members) == len(brute)
                torch.testing.assert_close(tokens.centers[b, t], brute.double().mean(0).float(), atol=1e-5,
                                           rtol=0)
            else:
                torch.testing.assert_close(tokens.centers[b, t], members.mean(0), atol=1e-5, rtol=0)
        kept_regions = set(tokens.region_index[b][tokens.region_index[b] > 0].tolist())
        in_kept = torch.tensor([int(r) in kept_regions for r in region[b]])
        assert torch.all(tokens.point_token[b][in_kept] >= 0)
        # fallback tokens own exactly the unassigned valid points (region 0 or a dropped region)
        fallback_tokens = (tokens.region_index[b] == 0).nonzero().flatten().tolist()
        unassigned = valid & ~in_kept
        owned_by_fallback = torch.isin(tokens.point_token[b], torch.tensor(fallback_tokens, dtype=torch.long))
        assert torch.equal(owned_by_fallback, unassigned)


def test_sam_tokenizer_sampling_rule():
    sizes = [[50, 20]]
    points, region = _padded_batch(sizes, num_unassigned=[0])
    tok = SAMGuidedTokenizer(num_points_per_token=32, min_points=4, max_fallback_tokens=0).train()
    tokens = tok(points, region)
    # region 1 (50 >= S): 32 distinct members, no repeat
    _, big = _assert_sampled_from_members(tokens, points, 0, 0)
    assert len(set(big.tolist())) == 32
    # region 2 (20 < S): every member appears, each 1 or 2 times (cyclic repeat)
    _, small = _assert_sampled_from_members(tokens, points, 0, 1)
    counts = np.bincount(small.numpy(), minlength=20)
    assert counts.min() >= 1 and counts.max() <= 2 and counts.sum() == 32


def test_sample_group_members_rule_and_errors():
    torch.manual_seed(1)
    group = torch.tensor([0, 1, 0, -1, 1, 0, 2, 0, 0, 1])
    members = sample_group_members(group, 3, 4)
    for g, row in enumerate(members):
        assert torch.all(group[row] == g)
    assert len(set(members[0].tolist())) == 4  # 5 points >= 4: without replacement
    assert sorted(members[2].tolist()) == [6, 6, 6, 6]
    assert sorted(set(members[1].tolist())) == [1, 4, 9]
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(sample_group_members(group, 3, 4, gen_a), sample_group_members(group, 3, 4, gen_b))
    with pytest.raises(ValueError, match='at least one point'):
        sample_group_members(group, 4, 4)
    pts = torch.arange(30.).view(10, 3)
    brute = torch.stack([pts[group == g].mean(0) for g in range(3)])
    torch.testing.assert_close(group_centroids(pts, group, 3), brute)


def test_sam_tokenizer_cap_merges_smallest_regions_instead_of_dropping():
    sizes = [[50, 20, 40, 30, 35, 40]]  # regions 3 and 6 tie at 40
    points, region = _padded_batch(sizes, num_unassigned=[40])
    tok = SAMGuidedTokenizer(num_points_per_token=16, min_points=8, max_tokens=3, max_fallback_tokens=4).eval()
    tokens = tok(points, region)
    # the 3 largest keep their own token: 50 (id 1), then the 40-point tie (ids 3 and 6)
    kept = [1, 3, 6]
    assert tokens.region_index[0].tolist() == kept and tokens.num_tokens.tolist() == [3]
    pts, reg, owner = points[0].double(), region[0], tokens.point_token[0]
    centroid = {r: pts[reg == r].mean(0) for r in range(1, 7)}
    for r in range(1, 7):  # a merged region joins the kept region with the nearest centroid (brute force)
        expected = kept.index(r) if r in kept else min(range(3), key=lambda t: float(
            (centroid[r] - centroid[kept[t]]).norm()))
        assert torch.all(owner[reg == r] == expected), r
    # the regions use the whole cap, so the unassigned points join the nearest token centre (of its region points)
    region_centres = torch.stack([pts[(owner == t) & (reg > 0)].mean(0) for t in range(3)])
    assert torch.equal(owner[reg == 0], _dist(pts[reg == 0], region_centres).argmin(1))
    assert torch.all(owner[reg >= 0] >= 0)  # no point leaves the model
    for t in range(3):  # a token's centre is the mean of all its points
        torch.testing.assert_close(tokens.centers[0, t].double(), pts[owner == t].mean(0), atol=1e-5, rtol=0)
    assert dict(tok.budget_stats) == dict(samples=1, capped_samples=1, merged_regions=3,
                                          merged_region_points=20 + 30 + 35, merged_unassigned_points=40)
    tok4 = SAMGuidedTokenizer(num_points_per_token=16, min_points=8, max_tokens=4, max_fallback_tokens=4)
    assert tok4.eval()(points, region).region_index[0].tolist() == [1, 3, 5, 6]
    # 2 tokens: the tie between ids 3 and 6 goes to the lower id
    tok2 = SAMGuidedTokenizer(num_points_per_token=16, min_points=8, max_tokens=2, max_fallback_tokens=4)
    assert tok2.eval()(points, region).region_index[0].tolist() == [1, 3]
    # no cap (the default): every region has its own token and the unassigned points fallback tokens
    free = SAMGuidedTokenizer(num_points_per_token=16, min_points=8, max_fallback_tokens=4).eval()
    assert free.max_tokens is None
    assert free(points, region).region_index[0].tolist() == [1, 2, 3, 4, 5, 6, 0, 0, 0]
    assert free.budget_stats['capped_samples'] == 0


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_sam_tokenizer_never_drops_a_point_of_a_big_region(seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 60, size=int(rng.integers(5, 40))).tolist()
    points, region = _padded_batch([sizes], num_unassigned=[int(rng.integers(0, 80))], seed=seed,
                                   extra_padding=(5, ))
    reg = region[0]
    counts = torch.bincount(reg.clamp(min=0))
    big_ids = [r for r in range(1, len(counts)) if counts[r] >= 10]
    big = torch.isin(reg, torch.tensor(big_ids, dtype=torch.long))
    for cap in (None, 1, 3, max(len(big_ids) // 2, 1), len(big_ids) + 2):
        for fallback in (0, 4):
            tok = SAMGuidedTokenizer(num_points_per_token=8, min_points=10, max_tokens=cap,
                                     max_fallback_tokens=fallback).eval()
            tokens = tok(points, region)
            assert torch.all(tokens.point_token[0][big] >= 0), (cap, fallback)
            assert torch.all(tokens.point_token[0][reg < 0] == -1)
            if cap is not None:
                assert int(tokens.num_tokens[0]) <= cap
            if cap is None or cap >= len(big_ids):  # one token per big region, as the paper says
                assert sorted(tokens.region_index[0][tokens.region_index[0] > 0].tolist()) == big_ids
                assert tok.budget_stats['merged_regions'] == 0


def test_sam_tokenizer_fallback_count_and_disable():
    points, region = _padded_batch([[30]], num_unassigned=[100])
    for cap, size, expected in [(32, None, math.ceil(100 / 16)), (3, None, 3), (32, 60, 2), (0, None, 0)]:
        tok = SAMGuidedTokenizer(num_points_per_token=16, min_points=8, max_fallback_tokens=cap,
                                 fallback_size=size).eval()
        tokens = tok(points, region)
        assert tokens.region_index[0, :int(tokens.num_tokens[0])].tolist() == [1] + [0] * expected
        if cap == 0:
            assert torch.all(tokens.point_token[0][region[0] == 0] == -1)
    # fewer unassigned points than min_points: no fallback token, they are dropped
    points, region = _padded_batch([[30]], num_unassigned=[5])
    tokens = SAMGuidedTokenizer(num_points_per_token=16, min_points=8).eval()(points, region)
    assert tokens.num_tokens.tolist() == [1]


def test_sam_tokenizer_eval_deterministic_train_random():
    points, region = _padded_batch([[200, 50]], num_unassigned=[30])
    tok = SAMGuidedTokenizer(num_points_per_token=32, min_points=8)
    tok.eval()
    a, b = tok(points, region), tok(points, region)
    assert torch.equal(a.neighborhoods, b.neighborhoods)
    tok.train()
    torch.manual_seed(0)
    c = tok(points, region)
    torch.manual_seed(1)
    d = tok(points, region)
    assert not torch.equal(c.neighborhoods[0, 0], d.neighborhoods[0, 0])  # 200-point region resampled
    torch.testing.assert_close(c.centers, d.centers)  # centres use all points: no randomness


def test_sam_tokenizer_empty_sample_and_all_padding():
    points, region = _padded_batch([[20], [3]], num_unassigned=[0, 2])
    tokens = SAMGuidedTokenizer(num_points_per_token=8, min_points=8).eval()(points, region)
    assert tokens.num_tokens.tolist() == [1, 0]
    assert tokens.padding_mask[1].all() and torch.all(tokens.point_token[1] == -1)
    region_all_pad = torch.full_like(region, -1)
    tokens = SAMGuidedTokenizer(num_points_per_token=8, min_points=8).eval()(points, region_all_pad)
    assert tokens.padding_mask.shape == (2, 1) and tokens.padding_mask.all()


@pytest.mark.parametrize('tokenizer', [SAMGuidedTokenizer(), FPSKNNTokenizer()])
def test_tokenizers_reject_bad_inputs(tokenizer):
    points = torch.rand(2, 10, 3)
    name = type(tokenizer).__name__
    with pytest.raises(ValueError, match=f'{name}: points must have shape'):
        tokenizer(torch.rand(2, 10, 2), torch.zeros(2, 10, dtype=torch.long))
    with pytest.raises(ValueError, match=f'{name}: point_region must have shape'):
        tokenizer(points, torch.zeros(2, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=f'{name}: point_region must be an integer'):
        tokenizer(points, torch.zeros(2, 10))
    with pytest.raises(ValueError, match='>= -1'):
        tokenizer(points, torch.full((2, 10), -2))
    with pytest.raises(ValueError, match='must be >= 1'):
        type(tokenizer)(num_points_per_token=0)


def _dist(a, b):
    """Exact pairwise distances (cdist's matmul path is too coarse for 1e-6 checks)."""
    return (a.double()[:, None] - b.double()[None]).norm(dim=-1)


def _brute_knn(points, centres, k):
    return _dist(centres, points).topk(k, largest=False).values


@pytest.mark.parametrize('k', [8, 120])  # 120 > 99 takes the top-k path instead of ops.knn
def test_fps_knn_tokenizer_matches_brute_force(k):
    torch.manual_seed(0)
    points = torch.rand(2, 300, 3)
    region = torch.randint(0, 5, (2, 300))
    tokens = FPSKNNTokenizer(num_tokens=16, num_points_per_token=k).eval()(points, region)
    assert tokens.neighborhoods.shape == (2, 16, k, 3) and not tokens.padding_mask.any()
    for b in range(2):
        # centres are input points, their region gives region_index
        d = _dist(tokens.centers[b], points[b])
        nearest = d.argmin(1)
        assert float(d.min(1).values.max()) < 1e-6
        assert torch.equal(tokens.region_index[b], region[b][nearest])
        # neighbourhoods are the k nearest points of the centre (compared by distance, ties are arbitrary)
        got = (tokens.neighborhoods[b].double().norm(dim=-1)).sort(dim=1).values
        torch.testing.assert_close(got, _brute_knn(points[b], tokens.centers[b], k), atol=1e-5, rtol=0)
        # point_token is the nearest centre of every point
        owner_dist = (points[b] - tokens.centers[b][tokens.point_token[b]]).double().norm(dim=-1)
        torch.testing.assert_close(owner_dist, _dist(points[b], tokens.centers[b]).min(1).values,
                                   atol=1e-5, rtol=0)
    ref = knn_indices(points, tokens.centers, k)
    assert ref.shape == (2, 16, k)


def test_fps_knn_tokenizer_padding_matches_unpadded():
    torch.manual_seed(0)
    points = torch.rand(2, 60, 3)
    region = torch.randint(0, 4, (2, 60))
    region[1, 40:] = -1  # sample 1 has 40 real points
    points[1, 40:] = 0.
    tok = FPSKNNTokenizer(num_tokens=50, num_points_per_token=8).eval()
    tokens = tok(points, region)
    assert tokens.num_tokens.tolist() == [50, 40]  # fewer points than centres: one token per point
    alone = tok(points[1:, :40], region[1:, :40])
    torch.testing.assert_close(tokens.centers[1, :40], alone.centers[0])
    torch.testing.assert_close(tokens.neighborhoods[1, :40], alone.neighborhoods[0])
    assert torch.all(tokens.point_token[1, 40:] == -1)
    assert torch.equal(tokens.point_token[1, :40], alone.point_token[0])
    # fewer points than the group size: neighbours repeat cyclically
    small = FPSKNNTokenizer(num_tokens=2, num_points_per_token=8).eval()(points[:1, :5], region[:1, :5])
    assert small.neighborhoods.shape == (1, 2, 8, 3)
    torch.testing.assert_close(small.neighborhoods[0, :, 5:], small.neighborhoods[0, :, :3])


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device (mmcv kernels)')
def test_tokenizers_on_cuda_match_cpu():
    points, region = _padded_batch([[300, 40, 20], [150, 60]], num_unassigned=[200, 50], extra_padding=(0, 13))
    sam = SAMGuidedTokenizer(num_points_per_token=32, min_points=16, max_fallback_tokens=4).eval()
    cpu, gpu = sam(points, region), sam(points.cuda(), region.cuda())
    assert gpu.centers.is_cuda and gpu.point_token.is_cuda
    assert torch.equal(cpu.region_index, gpu.region_index.cpu())
    assert torch.equal(cpu.point_token, gpu.point_token.cpu())  # FPS of the fallback cells is exact on both
    torch.testing.assert_close(cpu.centers, gpu.centers.cpu(), atol=1e-5, rtol=0)
    torch.testing.assert_close(cpu.neighborhoods, gpu.neighborhoods.cpu(), atol=1e-5, rtol=0)
    knn_tok = FPSKNNTokenizer(num_tokens=16, num_points_per_token=32).eval()
    cpu, gpu = knn_tok(points, region), knn_tok(points.cuda(), region.cuda())
    torch.testing.assert_close(cpu.centers, gpu.centers.cpu())
    cpu_d = cpu.neighborhoods.norm(dim=-1).sort(dim=-1).values
    gpu_d = gpu.neighborhoods.norm(dim=-1).sort(dim=-1).values.cpu()
    torch.testing.assert_close(cpu_d, gpu_d, atol=1e-5, rtol=0)
