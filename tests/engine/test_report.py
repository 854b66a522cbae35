"""The demo report's readers and summaries: log parsing, the present-class AP mean, seed statistics, PCA colours."""
import math

import numpy as np
import pytest

from projects.sam_mtp.engine import report

LOG = """\
11/21 06:46:39 - mmengine - INFO - Epoch(train)  [1][ 5/15]  base_lr: 2.9e-04 lr: 2.9e-04  eta: 0:00:42  loss: 0.5000  loss_distill: 0.5000  target_tokens: 44.0000
11/21 06:46:40 - mmengine - INFO - Epoch(train)  [1][10/15]  base_lr: 3.0e-04  loss: 0.4000  loss_distill: 0.4000
11/21 06:46:41 - mmengine - INFO - Saving checkpoint at 1 epochs
11/21 06:46:42 - mmengine - INFO - Epoch(train)  [2][ 5/15]  base_lr: 3.1e-04  loss: 0.3000  loss_ins: 0.1000  loss_token: 0.2000
11/21 06:46:43 - mmengine - INFO - Iter(train) [  40/100]  lr: 1e-3  loss: 0.2500
"""


def test_parse_train_losses_reads_global_iterations_and_every_loss(tmp_path):
    path = tmp_path / 'run.log'
    path.write_text(LOG)
    curves = report.parse_train_losses(str(path))
    assert curves['iter'] == [5, 10, 20, 40]
    assert curves['loss'] == [0.5, 0.4, 0.3, 0.25]
    assert curves['loss_distill'] == [0.5, 0.4]
    assert curves['loss_token'] == [0.2]
    assert 'target_tokens' not in curves and 'base_lr' not in curves


def test_mean_over_present_classes_ignores_nan_and_summary_keys():
    metrics = {'chair_AP_0.25': 0.5, 'table_AP_0.25': float('nan'), 'sofa_AP_0.25': 0.1,
               'mAP_0.25': float('nan'), 'chair_AP_0.50': 0.2}
    assert report.mean_over_present_classes(metrics, '_AP_0.25') == pytest.approx(0.3)
    assert math.isnan(report.mean_over_present_classes({'x_AP_0.25': float('nan')}, '_AP_0.25'))


def test_summarize_runs_groups_by_task_and_init_with_sample_std():
    runs = [dict(task='seg', init='pretrained', seed=s, metrics=dict(miou=v)) for s, v in enumerate([0.2, 0.4])]
    runs.append(dict(task='seg', init='scratch', seed=0, metrics=dict(miou=0.1)))
    table = report.summarize_runs(runs, ['miou'])
    row = table['seg|pretrained']
    assert row['seeds'] == [0, 1] and row['mean']['miou'] == pytest.approx(0.3)
    assert row['std']['miou'] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert table['seg|scratch']['std']['miou'] == 0.0
    text = report.markdown_table(table, {'seg': ['miou']})
    assert '| seg | pretrained | miou | 0.300 ± 0.141 (n=2) | 0.200, 0.400 |' in text


def test_pca_colors_follow_the_main_direction_and_stay_in_range():
    rng = np.random.default_rng(0)
    t = rng.uniform(-1, 1, size=50)
    feats = np.outer(t, rng.normal(size=16)) + 1e-3 * rng.normal(size=(50, 16))
    rgb = report.pca_colors(feats)
    assert rgb.shape == (50, 3) and rgb.min() >= 0 and rgb.max() <= 1
    # the first colour channel orders the samples along the dominant direction (up to sign)
    assert abs(np.corrcoef(rgb[:, 0], t)[0, 1]) > 0.99
