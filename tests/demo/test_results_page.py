"""docs/demo_results.md's generator (projects/sam_mtp/demo/results_page.py): the documented numbers read back from a
page (also one written before the probe table named its pairs), their comparison across two machines, the
per-class IoU count."""
import os.path as osp

import pytest

from projects.sam_mtp.demo.results_page import cross_machine, documented_values, per_class_iou

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
INTEL_PAGE = osp.join(ROOT, 'docs', 'bench_runs', 'demo_results_2026-12-01_intel-xeon.md')


def test_documented_values_of_the_intel_page_written_with_the_old_probe_header():
    with open(INTEL_PAGE) as f:
        values = documented_values(f.read())
    assert values['cpu'] == 'Intel(R) Xeon(R) Processor @ 2.00GHz' and values['date'] == '2026-12-01 04:04 UTC'
    # the 8 sentences of the default run's reading; the random-ViT section's reading is not part of it
    assert len(values['calls']) == 8
    assert values['calls'][('probe', 100, 'miou', 'stage1', 'random-init')] == (0.083, 0.070, 0.097, True)
    assert values['calls'][('seg', 25, 'acc', 'pretrained', 'scratch')] == (0.014, -0.049, 0.077, False)
    assert values['values'][('probe', 'stage2', 'miou', 2)] == 0.179
    assert values['values'][('run', 'seg', '25%', 'scratch', 'acc', 1)] == 0.758
    assert values['values'][('loss', 'stage2 seed 1', 'loss_token', 'last')] == 0.2767
    # per seed: 3 probe rows x 3 + 8 runs rows x 3, and 15 loss rows x 2
    assert len(values['values']) == 9 + 24 + 30


def _values(calls, values):
    return dict(calls=calls, values=values, cpu='cpu', date='date')


def test_cross_machine_counts_differences_flips_and_the_spread_of_bounds_per_metric():
    ref = _values({('probe', 100, 'miou', 'stage1', 'random-init'): (0.08, 0.01, 0.15, True),
                   ('probe', 100, 'miou', 'stage2', 'random-init'): (0.04, -0.02, 0.10, False),
                   ('seg', 100, 'miou', 'pretrained', 'scratch'): (0.01, -0.03, 0.05, False),
                   ('seg', 25, 'miou', 'pretrained', 'scratch'): (0.02, -0.01, 0.05, False)},
                  {('run', 'a'): 0.5, ('run', 'b'): 0.25, ('run', 'only here'): 1.0})
    cur = _values({('probe', 100, 'miou', 'stage1', 'random-init'): (0.07, -0.01, 0.15, False),   # flipped
                   ('probe', 100, 'miou', 'stage2', 'random-init'): (0.04, -0.02, 0.13, False),
                   ('seg', 100, 'miou', 'pretrained', 'scratch'): (0.01, -0.03, 0.05, False),
                   ('seg', 25, 'miou', 'pretrained', 'scratch'): (0.03, -0.005, 0.06, False)},
                  {('run', 'a'): 0.5, ('run', 'b'): 0.5})
    out = cross_machine(ref, cur)
    assert out['compared'] == 2 + 4 * 3 and out['calls'] == 4
    # differing: run b; stage1 mean and lo; stage2 hi; seg 25% mean, lo and hi
    assert out['differing'] == 1 + 2 + 1 + 3 and out['max_abs_difference'] == pytest.approx(0.25)
    assert out['flipped'] == [('probe', 100, 'miou', 'stage1', 'random-init')]
    # largest move of a bound: probe 0.03 (stage2 hi), seg 0.01 (25 % hi), means do not count
    assert out['spread'][('probe', 'miou')] == pytest.approx(0.03)
    assert out['spread'][('seg', 'miou')] == pytest.approx(0.01)


def _seg_run(**iou):
    return dict(task='seg', raw_metrics=dict(iou, miou=0.1, acc=0.5, acc_cls=0.2))


def test_per_class_iou_counts_runs_above_zero_and_wall_floor_only_runs():
    runs = [_seg_run(wall=0.6, floor=0.8, chair=0.0, table=float('nan')),
            _seg_run(wall=0.5, floor=0.0, chair=0.0, table=float('nan')),
            _seg_run(wall=0.7, floor=0.9, chair=0.1, table=float('nan')),
            dict(task='3detr', raw_metrics=dict(wall=1.0))]
    lines = per_class_iou(dict(runs=runs))
    assert '| wall | 3 of 3 | 0.600 |' in lines and '| floor | 2 of 3 | 0.567 |' in lines
    assert '| chair | 1 of 3 | 0.033 |' in lines and '| table | 0 of 3 | nan |' in lines
    assert lines[-1] == '**2 of 3** seg runs have IoU > 0 on no class other than wall and floor.'
    assert not any('acc' in line or 'miou' in line for line in lines)


def _stats(mean):
    return dict(miou=dict(mean=mean, lo=mean - 0.01, hi=mean + 0.01, n=3, excludes_zero=True))


def _pair(a, b, mean, lo, hi):
    # the fields of report.paired_comparisons' records that the page reads (a study's pairs are probe pairs)
    return dict(a_name=a, b_name=b, task='probe', fraction=1.0, metric='miou', diff=dict(mean=mean, lo=lo, hi=hi, n=3,
                                                               excludes_zero=bool(lo > 0 or hi < 0)))


def test_stage2_study_findings_quote_the_measured_rows():
    from projects.sam_mtp.demo.results_page import _stage2_study_section
    names = {'random-init': 0.11, 'stage1': 0.18, 'stage2': 0.14, 'random-init [embedding]': 0.10,
             'stage1 [embedding]': 0.17, 'stage2 [embedding]': 0.13, 'stage2 60e @10': 0.15, 'stage2 60e @20': 0.16,
             'stage2 target LN': 0.139, 'stage2 student from stage1': 0.167}
    comparisons = [_pair('stage2 60e @20', 'stage2', 0.02, -0.01, 0.05), _pair('stage2 60e @20', 'stage1', -0.02,
                                                                             -0.05, 0.01),
                   _pair('stage2 target LN', 'stage2', -0.001, -0.02, 0.01),
                   _pair('stage2 student from stage1', 'stage1', -0.013, -0.07, 0.04),
                   _pair('random-init', 'stage2', -0.03, -0.05, -0.01)]  # read back as stage2 - random-init
    study = dict(summary={n: _stats(v) for n, v in names.items()}, comparisons=comparisons, long_epochs=60,
                 command='python benchmarks/demo_stage2_study.py', cpu='CPU X', commit='abcdef1234567', seeds=[0, 1, 2])
    text = '\n'.join(_stage2_study_section(study))
    assert 'mIoU 0.150-0.160 along the run (stage 1: 0.180)' in text
    assert 'at the end +0.020 [-0.010, +0.050] over the 30-epoch stage 2 and still -0.020 [-0.050, +0.010]' in text
    assert '-0.001 [-0.020, +0.010] against the default stage 2' in text
    assert 'stage 2 0.130-0.140, stage 1 0.170-0.180, random init 0.100-0.110' in text
    assert "Stage 2's best layer stays below stage 1's worst" in text
    assert '(-0.013 [-0.070, +0.040] against stage 1)' in text and '(+0.030 [+0.010, +0.050] **excludes 0**)' in text
    assert '| stage2 60e @20 | 0.160 [0.150, 0.170] | -0.020 [-0.050, +0.010] | +0.020 [-0.010, +0.050] |' in text
    assert 'on CPU X, commit abcdef1234; seeds [0, 1, 2]' in text


def test_colour_control_sentence_quotes_accuracy_and_majority():
    from projects.sam_mtp.demo.results_page import _colour_control_sentence
    result = dict(accuracy=0.798, majority_accuracy=0.379, train_objects=124, val_objects=120)
    control = dict(command='python benchmarks/demo_colour_control.py', cpu='CPU X', frames=dict(train=120, val=110),
                   results={'random-vit': result, 'mean RGB': dict(result, accuracy=0.815)})
    text = _colour_control_sentence(control)
    assert 'classify the 120 validation objects at **0.80** accuracy' in text and 'on the 124 training objects' in text
    assert '**0.38** for the majority class' in text and 'mean colour alone reaches 0.81' in text
