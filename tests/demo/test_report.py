"""The demo report's readers and summaries: log parsing, the present-class AP mean, seed statistics, PCA colours."""
import math

import numpy as np
import pytest

from projects.sam_mtp.demo import plots, report

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


def test_mean_over_present_classes_keeps_classes_starting_with_m_and_drops_only_summaries():
    # A class named "monitor" is a class; mAP_*/mAR_* are IndoorMetric's summaries (here with a suffix that
    # would match them) and must not enter the mean.
    metrics = {'monitor_AP_0.25': 0.4, 'chair_AP_0.25': 0.2, 'mAP_0.25': 0.9, 'mAR_0.25': 0.8,
               'mirror_AP_0.25': 0.6}
    assert report.mean_over_present_classes(metrics, 'AP_0.25') == pytest.approx(0.4)
    assert report.mean_over_present_classes(metrics, '_AP_0.25') == pytest.approx(0.4)


def test_t_interval_matches_the_textbook_formula():
    # mean 2, sample std 1, n 3: half width t_{0.975, 2} / sqrt(3) with t_{0.975, 2} = 4.3026527297...
    ci = report.t_interval([1.0, 2.0, 3.0])
    half = 4.302652729749462 / math.sqrt(3)
    assert ci['mean'] == pytest.approx(2.0) and ci['n'] == 3
    assert ci['lo'] == pytest.approx(2.0 - half, rel=1e-9) and ci['hi'] == pytest.approx(2.0 + half, rel=1e-9)
    assert ci['excludes_zero'] is False  # [-0.48, 4.48]
    assert report.t_interval([3.0, 4.0, 5.0])['excludes_zero'] is True  # [1.52, 6.48]
    # 90 %: t_{0.95, 4} = 2.131846786...
    ci90 = report.t_interval([0.1, 0.2, 0.3, 0.4, 0.5], confidence=0.9)
    assert ci90['hi'] - ci90['mean'] == pytest.approx(2.1318467863266495 * np.std([.1, .2, .3, .4, .5], ddof=1)
                                                      / math.sqrt(5), rel=1e-9)
    one = report.t_interval([0.5])
    assert one['mean'] == 0.5 and math.isnan(one['lo']) and one['excludes_zero'] is False


def _run(task, init, seed, fraction=1.0, **metrics):
    return dict(task=task, init=init, seed=seed, fraction=fraction, metrics=metrics)


def test_paired_comparisons_pair_by_seed_and_fraction_and_skip_unpaired_or_nan():
    runs = [_run('seg', 'pretrained', 0, miou=0.30), _run('seg', 'scratch', 0, miou=0.20),
            _run('seg', 'pretrained', 1, miou=0.25), _run('seg', 'scratch', 1, miou=0.20),
            _run('seg', 'pretrained', 2, miou=0.90),  # no scratch partner: left out
            _run('seg', 'pretrained', 0, 0.25, miou=0.10), _run('seg', 'scratch', 0, 0.25, miou=0.15),
            _run('3detr', 'pretrained', 0, AP25=float('nan'), AP50=0.1),
            _run('3detr', 'scratch', 0, AP25=0.2, AP50=0.3)]
    out = report.paired_comparisons(runs, {'seg': ['miou'], '3detr': ['AP25', 'AP50']})
    keyed = {(c['task'], c['fraction'], c['metric']): c for c in out}
    assert set(keyed) == {('seg', 1.0, 'miou'), ('seg', 0.25, 'miou'), ('3detr', 1.0, 'AP50')}
    full = keyed[('seg', 1.0, 'miou')]
    assert full['seeds'] == [0, 1] and full['a'] == [0.30, 0.25] and full['b'] == [0.20, 0.20]
    assert full['diff']['mean'] == pytest.approx(0.075) and full['diff']['n'] == 2
    # two differences 0.10 and 0.05: t_{0.975, 1} = 12.706204736...
    half = 12.706204736174694 * np.std([0.10, 0.05], ddof=1) / math.sqrt(2)
    assert full['diff']['lo'] == pytest.approx(0.075 - half) and full['diff']['excludes_zero'] is False
    assert keyed[('seg', 0.25, 'miou')]['diff']['mean'] == pytest.approx(-0.05)
    assert keyed[('3detr', 1.0, 'AP50')]['diff']['mean'] == pytest.approx(-0.2)
    table = report.comparison_table(out, 1.0)
    assert '| seg | 100% | miou | pretrained vs scratch | 0.275 | 0.200 | +0.075 [' in table and '25%' not in table
    text = report.reading(out)
    assert any(t.startswith('seg miou: no difference between pretrained and scratch resolved (+0.075') for t in text)


def test_reading_calls_a_difference_only_when_the_interval_excludes_zero():
    runs = [_run('seg', i, s, miou=v) for s, (p, q) in enumerate([(0.5, 0.2), (0.52, 0.21), (0.49, 0.2)])
            for i, v in (('pretrained', p), ('scratch', q))]
    (c, ) = report.paired_comparisons(runs, {'seg': ['miou']})
    assert c['diff']['excludes_zero'] and c['diff']['lo'] > 0
    assert report.reading([c])[0].startswith('seg miou: pretrained is higher than scratch (+0.300')
    assert '**yes**' in report.comparison_table([c])


def test_plot_label_efficiency_writes_a_png(tmp_path):
    runs = [_run('seg', i, s, f, miou=v + 0.01 * s) for s in range(3) for f in (0.25, 1.0)
            for i, v in (('pretrained', 0.3 * f), ('scratch', 0.2 * f))]
    out = tmp_path / 'curve.png'
    plots.plot_label_efficiency(report.paired_comparisons(runs, {'seg': ['miou']}), 'seg', 'miou', str(out))
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    with pytest.raises(ValueError, match='no comparison of seg acc'):
        plots.plot_label_efficiency([], 'seg', 'acc', str(out))


def test_summarize_runs_groups_by_task_and_init_with_sample_std():
    runs = [dict(task='seg', init='pretrained', seed=s, metrics=dict(miou=v)) for s, v in enumerate([0.2, 0.4])]
    runs.append(dict(task='seg', init='scratch', seed=0, metrics=dict(miou=0.1)))
    table = report.summarize_runs(runs, ['miou'])
    row = table['seg|pretrained']
    assert row['seeds'] == [0, 1] and row['mean']['miou'] == pytest.approx(0.3)
    assert row['std']['miou'] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert table['seg|scratch']['std']['miou'] == 0.0
    text = report.markdown_table(table, {'seg': ['miou']})
    assert '| seg | 100% | pretrained | miou | 0.300 ± 0.141 (n=2) | 0.200, 0.400 |' in text
    runs.append(dict(task='seg', init='scratch', seed=0, fraction=0.25, metrics=dict(miou=0.05)))
    table = report.summarize_runs(runs, ['miou'])
    assert table['seg|0.25|scratch']['values']['miou'] == [0.05] and table['seg|scratch']['values']['miou'] == [0.1]


def test_pca_colors_follow_the_main_direction_and_stay_in_range():
    rng = np.random.default_rng(0)
    t = rng.uniform(-1, 1, size=50)
    feats = np.outer(t, rng.normal(size=16)) + 1e-3 * rng.normal(size=(50, 16))
    rgb = plots.pca_colors(feats)
    assert rgb.shape == (50, 3) and rgb.min() >= 0 and rgb.max() <= 1
    # the first colour channel orders the samples along the dominant direction (up to sign)
    assert abs(np.corrcoef(rgb[:, 0], t)[0, 1]) > 0.99


def _comparison(a, b, mean, lo, hi, task='probe', metric='miou', n=3):
    return dict(task=task, fraction=1.0, metric=metric, a_name=a, b_name=b, a_mean=0.5, b_mean=0.4, confidence=0.95,
                diff=dict(mean=mean, lo=lo, hi=hi, n=n, excludes_zero=bool(lo > 0 or hi < 0)))


def test_comparison_table_names_each_rows_own_pair():
    """The probe's table holds several pairs: a header naming the first row's pair mislabelled the others."""
    rows = [_comparison('stage2', 'random-init', 0.04, -0.02, 0.11), _comparison('stage1', 'random-init', 0.08, 0.07,
                                                                                 0.10),
            _comparison('stage2', 'stage1', -0.04, -0.07, -0.01)]
    lines = report.comparison_table(rows).splitlines()
    assert 'stage' not in lines[0] and 'random-init' not in lines[0]  # the header names no pair
    assert [line.split(' | ')[3] for line in lines[2:]] == ['stage2 vs random-init', 'stage1 vs random-init',
                                                           'stage2 vs stage1']
    assert lines[4].endswith('| -0.040 [-0.070, -0.010] | **yes** | 3 |')


def test_reading_marks_fragile_verdicts_by_the_nearer_bound():
    spread = {('probe', 'miou'): 0.02}
    rows = [_comparison('stage1', 'random-init', 0.10, 0.015, 0.185),   # call, nearer bound 0.015 <= 0.02: fragile
            _comparison('stage2', 'stage1', -0.10, -0.175, -0.025),     # call, nearer bound 0.025 > 0.02: robust
            _comparison('stage2', 'random-init', 0.05, -0.01, 0.11),    # no call, 0.01 from excluding 0: fragile
            _comparison('stage2', 'random-init', 0.05, -0.01, 0.11, metric='acc'),  # no spread for acc
            _comparison('x', 'y', 0.05, -0.01, 0.11, n=1)]             # a single pair: no interval to judge
    text = report.reading(rows, spread)
    assert ['**Fragile**' in t for t in text] == [True, False, True, False, False]
    assert 'the nearer bound is 0.015 from 0, within the 0.020' in text[0]
    assert text[1].startswith('probe miou: stage2 is lower than stage1 (-0.100')
    assert report.reading(rows) == [t.split(' **Fragile**')[0] for t in text]
    assert report.verdict_margin(dict(lo=-0.3, hi=0.05)) == pytest.approx(0.05)


def test_methods_matrix_gives_each_methods_mean_and_paired_intervals_against_scratch_and_sam_mtp():
    """Two seeds, SAM-MTP and stage 1: fine-tuning differences from the stored comparisons, probe differences of
    stage 1 against SAM-MTP read from the stored stage 2 - stage 1 pair with its bounds negated."""
    seeds = [0, 1]
    values = {'pretrained': [0.30, 0.40], 'scratch': [0.10, 0.30], 'stage1': [0.20, 0.20]}
    runs = [dict(task='seg', init=init, seed=s, fraction=1.0, metrics=dict(miou=v[i]))
            for init, v in values.items() for i, s in enumerate(seeds)]
    runs.append(dict(task='seg', init='stage1', seed=0, fraction=0.25, metrics=dict(miou=0.9)))  # not all scenes
    probe_values = {'stage2': [0.6, 0.8], 'stage1': [0.5, 0.5], 'random-init': [0.1, 0.2]}
    probe_runs = [dict(task='probe', init=init, seed=s, fraction=1.0, metrics=dict(miou=v[i]))
                  for init, v in probe_values.items() for i, s in enumerate(seeds)]
    metrics = {'seg': ('miou',), 'probe': ('miou',)}
    comparisons = [c for a, b in (('pretrained', 'scratch'), ('stage1', 'scratch'), ('stage1', 'pretrained'))
                   for c in report.paired_comparisons(runs, metrics, a=a, b=b)]
    probe_comparisons = [c for a, b in (('stage2', 'random-init'), ('stage1', 'random-init'), ('stage2', 'stage1'))
                         for c in report.paired_comparisons(probe_runs, metrics, a=a, b=b)]
    summary = dict(methods={'sam-mtp': dict(finetune_label='pretrained', probe_label='stage2'),
                            'stage1': dict(finetune_label='stage1', probe_label='stage1')},
                   runs=runs, comparisons=comparisons,
                   probe=dict(runs=probe_runs, comparisons=probe_comparisons))
    rows = [line.split(' | ') for line in report.methods_matrix(summary, 'seg', 'miou').splitlines()[2:]]
    assert [r[0] for r in rows] == ['| sam-mtp', '| stage1']
    sam_mtp, stage1 = rows

    def cell(diffs):
        t = report.t_interval(diffs)
        text = f'{t["mean"]:+.3f} [{t["lo"]:+.3f}, {t["hi"]:+.3f}]'
        return f'**{text}**' if t['excludes_zero'] else text

    assert sam_mtp[1] == '0.350' and sam_mtp[2] == cell([0.2, 0.1]) and sam_mtp[3] == ''
    assert sam_mtp[4] == '0.700' and sam_mtp[5] == cell([0.5, 0.6]) and sam_mtp[6].strip(' |') == ''
    assert stage1[1] == '0.200' and stage1[2] == cell([0.1, -0.1]) and stage1[3] == cell([-0.1, -0.2])
    assert stage1[4] == '0.500' and stage1[5] == cell([0.4, 0.3])
    assert stage1[6].rstrip(' |') == cell([-0.1, -0.3])  # stage1 - stage2, from the stored stage2 - stage1
