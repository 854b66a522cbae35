"""The frozen-feature linear probe's pieces against independent references: token class counts by a loop,
the softmax-regression fit against scikit-learn's multinomial logistic regression on the same per-point data."""
import numpy as np
import pytest
import torch

from projects.sam_mtp.evaluation.linear_probe import fit_linear_probe, predict_tokens, token_class_histograms


def test_token_class_histograms_count_labelled_points_of_each_token():
    rng = np.random.default_rng(0)
    point_token = rng.integers(-1, 5, size=300)
    labels = rng.integers(0, 5, size=300)  # 4 = ignore index with 4 classes
    hist = token_class_histograms(torch.from_numpy(point_token), torch.from_numpy(labels), 5, 4)
    expected = np.zeros((5, 4))
    for t, c in zip(point_token, labels):
        if t >= 0 and c < 4:
            expected[t, c] += 1
    np.testing.assert_array_equal(hist.numpy(), expected)
    assert hist.dtype == torch.float64


def test_fit_linear_probe_matches_sklearn_per_point_logistic_regression():
    """Points of a token share its feature, so the token-level fit must equal a per-point multinomial logistic
    regression (scikit-learn, lbfgs, unpenalised intercept) on the standardised token features."""
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(1)
    num_tokens, dims, classes = 60, 5, 3
    feats = rng.normal(size=(num_tokens, dims)) + np.repeat(np.eye(3, dims) * 1.5, 20, axis=0)
    hist = rng.integers(0, 4, size=(num_tokens, classes)).astype(float)
    hist[np.arange(num_tokens), np.repeat(np.arange(3), 20)] += 6  # each token mostly one class
    weight_decay = 1e-2
    probe = fit_linear_probe(torch.from_numpy(feats), torch.from_numpy(hist), weight_decay=weight_decay)

    z = (feats - feats.mean(0)) / feats.std(0, ddof=1)
    token_idx, cls = np.nonzero(hist)
    sample_weight = hist[token_idx, cls]
    # ours: sum_i w_i CE_i / sum(w) + wd |W|^2  ==  (sklearn: 0.5 |W|^2 + C sum_i w_i CE_i) * 2 wd
    ref = LogisticRegression(C=1 / (2 * weight_decay * hist.sum()), tol=1e-10, max_iter=10000)
    ref.fit(z[token_idx], cls, sample_weight=sample_weight)
    np.testing.assert_allclose(probe['weight'].numpy(), ref.coef_, atol=2e-4)
    np.testing.assert_allclose(probe['bias'].numpy() - probe['bias'].numpy().mean(),
                               ref.intercept_ - ref.intercept_.mean(), atol=2e-4)
    pred = predict_tokens(probe, torch.from_numpy(feats)).numpy()
    np.testing.assert_array_equal(pred, ref.predict(z))
    # deterministic: a second fit gives the same bits
    again = fit_linear_probe(torch.from_numpy(feats), torch.from_numpy(hist), weight_decay=weight_decay)
    assert torch.equal(again['weight'], probe['weight'])


def test_fit_linear_probe_rejects_bad_input():
    with pytest.raises(ValueError, match='3 token features but 2 histograms'):
        fit_linear_probe(torch.zeros(3, 4), torch.ones(2, 2))
    with pytest.raises(ValueError, match='no labelled point'):
        fit_linear_probe(torch.zeros(3, 4), torch.zeros(3, 2))
