"""GroupBalancedDistillLoss and TokenFeatureMSELoss against hand-computed values."""
import pytest
import torch
import torch.nn.functional as F

from projects.sam_mtp.labels.formats.frame_labels import group_weights
from projects.sam_mtp.models.losses import GroupBalancedDistillLoss, TokenFeatureMSELoss

PRED = torch.tensor([[0., 0.], [2., 0.5], [0., -3.]])
TARGET = torch.zeros(3, 2)
# smooth-L1 (beta 1) per token, channel mean: 0, (1.5 + 0.125) / 2 = 0.8125, (0 + 2.5) / 2 = 1.25
RAW_W = torch.tensor([0.2, 0.5, 0.3])


def test_group_balanced_loss_hand_computed():
    weighted_mean = GroupBalancedDistillLoss()(PRED, TARGET, RAW_W)  # default weight_scale='batch_mean'
    assert weighted_mean.item() == pytest.approx((0.2 * 0 + 0.5 * 0.8125 + 0.3 * 1.25) / (0.2 + 0.5 + 0.3))
    scaled = GroupBalancedDistillLoss(weight_scale='num_groups')(PRED, TARGET, RAW_W, 3)
    assert scaled.item() == pytest.approx((0.6 * 0 + 1.5 * 0.8125 + 0.9 * 1.25) / 3)
    paper = GroupBalancedDistillLoss(weight_scale=None)(PRED, TARGET, RAW_W)
    assert paper.item() == pytest.approx((0.5 * 0.8125 + 0.3 * 1.25) / 3)
    fixed = GroupBalancedDistillLoss(weight_scale=2.0, loss_weight=0.5)(PRED, TARGET, RAW_W)
    assert fixed.item() == pytest.approx(0.5 * 2 * (0.5 * 0.8125 + 0.3 * 1.25) / 3)
    # per-token K (a (T,) tensor) works like the int
    per_token_k = GroupBalancedDistillLoss(weight_scale='num_groups')(PRED, TARGET, RAW_W, torch.tensor([3, 3, 3]))
    assert per_token_k.item() == pytest.approx(scaled.item())


def test_group_balanced_loss_without_reweighting_and_beta():
    plain = GroupBalancedDistillLoss(use_group_weights=False)
    assert plain(PRED, TARGET).item() == pytest.approx((0 + 0.8125 + 1.25) / 3)
    # weights passed anyway are ignored in the "without re-weighting" ablation
    assert plain(PRED, TARGET, RAW_W, 3).item() == pytest.approx((0 + 0.8125 + 1.25) / 3)
    # beta 0.5: |x| < 0.5 -> x^2, else |x| - 0.25: token 1 (1.75 + 0.25) / 2, token 2 (0 + 2.75) / 2
    half = GroupBalancedDistillLoss(beta=0.5, use_group_weights=False)
    assert half(PRED, TARGET).item() == pytest.approx((0 + 1.0 + 1.375) / 3)


def test_group_balanced_loss_with_paper_weights_and_gradient():
    w_group = torch.tensor(group_weights([1000, 100, 10]), dtype=torch.float32)
    groups = torch.tensor([0, 1, 2])
    pred = PRED.clone().requires_grad_(True)
    loss = GroupBalancedDistillLoss(weight_scale='num_groups')(pred, TARGET, w_group[groups], 3)
    expected = sum(3 * float(w_group[g]) * v for g, v in zip(groups.tolist(), [0., 0.8125, 1.25])) / 3
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    # d/dx smoothL1 = sign(x) beyond beta; token 1, channel 0: 3 * w1 * 1 / 2 channels / 3 tokens
    assert pred.grad[1, 0].item() == pytest.approx(float(w_group[1]) / 2)
    # batch_mean: the normaliser is a constant; token 1, channel 0: w1 / sum(w) / 2 channels
    pred.grad = None
    GroupBalancedDistillLoss()(pred, TARGET, w_group[groups]).backward()
    assert pred.grad[1, 0].item() == pytest.approx(float(w_group[1] / w_group.sum()) / 2)


def _regions_of(counts):
    """Group id of every region of a split with the given group sizes, and the paper's weight of each."""
    groups = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return torch.tensor(group_weights(counts), dtype=torch.float32)[groups], len(counts)


ZIPF_32 = [int(round(3200 / (rank + 1))) for rank in range(32)]


@pytest.mark.parametrize('counts,num_groups_factor', [([1000, 100, 10], 0.156), (ZIPF_32, 0.70)])
def test_weight_scale_magnitude_on_skewed_groups(counts, num_groups_factor):
    """All regions of a split in one batch, every region with the same smooth-L1 value c."""
    weight, k = _regions_of(counts)
    c = 0.8125  # smooth-L1 of (2, 0.5) vs 0, channel mean
    pred = torch.tensor([[2., 0.5]]).expand(len(weight), -1)
    target = torch.zeros_like(pred)
    unweighted = GroupBalancedDistillLoss(use_group_weights=False)(pred, target).item()
    assert unweighted == pytest.approx(c)
    # batch_mean keeps the unweighted magnitude exactly ...
    assert GroupBalancedDistillLoss()(pred, target, weight).item() == pytest.approx(c, rel=1e-5)
    # ... num_groups does not: the region-averaged w * K is the measured factor.
    scaled = GroupBalancedDistillLoss(weight_scale='num_groups')(pred, target, weight, k).item()
    assert scaled / c == pytest.approx(num_groups_factor, abs=0.01)
    assert float((weight * k).mean()) == pytest.approx(num_groups_factor, abs=0.01)
    # With varying per-region losses the weighted mean stays between the smallest and the largest.
    varied = torch.rand(len(weight), 2, generator=torch.Generator().manual_seed(0)) * 4
    loss = GroupBalancedDistillLoss()(varied, target, weight).item()
    per_region = F.smooth_l1_loss(varied, target, reduction='none').mean(1)
    assert per_region.min().item() <= loss <= per_region.max().item()
    expected = float((weight * per_region).sum() / weight.sum())
    assert loss == pytest.approx(expected, rel=1e-5)


def test_group_balanced_loss_empty_and_errors():
    pred = torch.zeros(0, 4, requires_grad=True)
    loss = GroupBalancedDistillLoss()(pred, torch.zeros(0, 4), torch.zeros(0), 3)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    with pytest.raises(ValueError, match='pred and target must both be'):
        GroupBalancedDistillLoss()(PRED, torch.zeros(3, 3), RAW_W, 3)
    with pytest.raises(ValueError, match='needs group_weight'):
        GroupBalancedDistillLoss()(PRED, TARGET)
    with pytest.raises(ValueError, match='needs num_groups'):
        GroupBalancedDistillLoss(weight_scale='num_groups')(PRED, TARGET, RAW_W)
    with pytest.raises(ValueError, match='weight_scale'):
        GroupBalancedDistillLoss(weight_scale='mean')
    # Every token in a zero-weight group: a zero loss, not NaN.
    zero = GroupBalancedDistillLoss()(PRED, TARGET, torch.zeros(3))
    assert zero.item() == 0.0


def test_token_feature_mse():
    pred = torch.tensor([[1., 3.], [0., 0.]])
    target = torch.tensor([[0., 1.], [0., 2.]])
    # rows: (1 + 4) / 2 = 2.5 and (0 + 4) / 2 = 2 -> mean 2.25
    assert TokenFeatureMSELoss()(pred, target).item() == pytest.approx(2.25)
    assert TokenFeatureMSELoss(loss_weight=2.)(pred, target).item() == pytest.approx(4.5)
    empty = TokenFeatureMSELoss()(torch.zeros(0, 2, requires_grad=True), torch.zeros(0, 2))
    assert empty.item() == 0.0 and empty.requires_grad
    with pytest.raises(ValueError, match='TokenFeatureMSELoss: pred and target'):
        TokenFeatureMSELoss()(pred, target[:1])
