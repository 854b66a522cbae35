"""GroupBalancedDistillLoss and TokenFeatureMSELoss against hand-computed values."""
import pytest
import torch

from projects.sam_mtp.labels.format import group_weights
from projects.sam_mtp.models.losses import GroupBalancedDistillLoss, TokenFeatureMSELoss

PRED = torch.tensor([[0., 0.], [2., 0.5], [0., -3.]])
TARGET = torch.zeros(3, 2)
# smooth-L1 (beta 1) per token, channel mean: 0, (1.5 + 0.125) / 2 = 0.8125, (0 + 2.5) / 2 = 1.25
RAW_W = torch.tensor([0.2, 0.5, 0.3])


def test_group_balanced_loss_hand_computed():
    scaled = GroupBalancedDistillLoss()(PRED, TARGET, RAW_W, 3)  # default weight_scale='num_groups'
    assert scaled.item() == pytest.approx((0.6 * 0 + 1.5 * 0.8125 + 0.9 * 1.25) / 3)
    paper = GroupBalancedDistillLoss(weight_scale=None)(PRED, TARGET, RAW_W)
    assert paper.item() == pytest.approx((0.5 * 0.8125 + 0.3 * 1.25) / 3)
    fixed = GroupBalancedDistillLoss(weight_scale=2.0, loss_weight=0.5)(PRED, TARGET, RAW_W)
    assert fixed.item() == pytest.approx(0.5 * 2 * (0.5 * 0.8125 + 0.3 * 1.25) / 3)
    # per-token K (a (T,) tensor) works like the int
    per_token_k = GroupBalancedDistillLoss()(PRED, TARGET, RAW_W, torch.tensor([3, 3, 3]))
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
    loss = GroupBalancedDistillLoss()(pred, TARGET, w_group[groups], 3)
    expected = sum(3 * float(w_group[g]) * v for g, v in zip(groups.tolist(), [0., 0.8125, 1.25])) / 3
    assert loss.item() == pytest.approx(expected)
    loss.backward()
    # d/dx smoothL1 = sign(x) beyond beta; token 1, channel 0: 3 * w1 * 1 / 2 channels / 3 tokens
    assert pred.grad[1, 0].item() == pytest.approx(float(w_group[1]) / 2)


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
        GroupBalancedDistillLoss()(PRED, TARGET, RAW_W)
    with pytest.raises(ValueError, match='weight_scale'):
        GroupBalancedDistillLoss(weight_scale='mean')


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
