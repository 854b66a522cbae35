"""The demo's method table (projects/sam_mtp/demo/methods.py): every method's configs exist, build and pretrain the
demo encoder that the fine-tuning configs load; steps shared by methods run once, teachers first; bad method lists
are refused in one line; every method is compared with scratch and with SAM-MTP, checked against a hand
calculation."""
import math
import os.path as osp

import numpy as np
import pytest

from projects.sam_mtp.demo import report
from projects.sam_mtp.demo.finetune import finetune_jobs
from projects.sam_mtp.demo.methods import METHODS, STEPS, MethodError, check_methods, pretrain_steps, step_chain
from projects.sam_mtp.demo.runner import Demo
from projects.sam_mtp.demo.settings import DEMO_CONFIGS, PROBE_CONFIG, DemoSettings


def test_every_method_names_its_paper_row_and_reaches_its_encoder_through_known_steps():
    assert list(METHODS)[0] == 'sam-mtp'
    expected_rows = {'sam-mtp': ('stage1', 'stage2'), 'point-mae': ('point-mae', ),
                     'bridge3d': ('bridge3d', ), 'dense-distill': ('stage1-knn-noreweight', ),
                     'dense-distill+mtp': ('stage1-knn-noreweight', 'stage2-knn-noreweight'),
                     'dense-distill+mtp+reweight': ('stage1-knn', 'stage2-knn'),
                     'dense-distill+mtp+sam-tokens': ('stage1-noreweight', 'stage2-noreweight'),
                     'stage1': ('stage1', ), 'stage1+mtp-joint': ('joint', )}
    assert {m: tuple(step_chain(METHODS[m].encoder_step)) for m in METHODS} == expected_rows


def test_shared_steps_run_once_with_teachers_first():
    methods = ['sam-mtp', 'dense-distill+mtp', 'dense-distill', 'stage1', 'point-mae']
    assert pretrain_steps(methods) == ['stage1', 'stage2', 'stage1-knn-noreweight', 'stage2-knn-noreweight',
                                       'point-mae']


def _demo_encoder():
    """The one encoder base with the demo's sizes (configs/sam_mtp/_base_/), as the demo configs compose it."""
    from mmengine.config import Config
    bases = osp.join(osp.dirname(DEMO_CONFIGS), '_base_')
    encoder = Config.fromfile(osp.join(bases, 'models', 'plain-point-transformer.py')).plain_point_transformer
    return dict(encoder, **Config.fromfile(osp.join(bases, 'demo_scale.py')).demo_encoder_size)


@pytest.mark.parametrize('name', sorted(STEPS))
def test_each_steps_config_exists_builds_and_pretrains_the_demo_encoder(name):
    """The encoder of every step equals the demo fine-tuning configs' encoder, so its checkpoint loads strictly;
    a stage-2 step's teacher is its teacher step's model."""
    from mmdet3d.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import projects.sam_mtp  # noqa: F401
    step = STEPS[name]
    cfg = Config.fromfile(step.config)
    encoder = dict(cfg.model.backbone)
    encoder.pop('init_cfg', None)
    assert encoder == dict(_demo_encoder())
    probe_encoder = dict(Config.fromfile(PROBE_CONFIG).model.backbone.encoder)
    assert probe_encoder == dict(_demo_encoder())
    if step.teacher:
        teacher = Config.fromfile(STEPS[step.teacher].config).model
        assert cfg.model.teacher.to_dict() == teacher.to_dict()
    init_default_scope('mmdet3d')
    model = MODELS.build(cfg.model)
    keys = {k[len('backbone.'):] for k in model.state_dict() if k.startswith('backbone.')}
    assert keys == set(MODELS.build(_demo_encoder()).state_dict())


def test_a_method_whose_demo_config_is_missing_is_refused_in_one_line(monkeypatch):
    import dataclasses

    from projects.sam_mtp.demo import methods
    missing = osp.join(DEMO_CONFIGS, 'point-mae_missing.py')
    monkeypatch.setitem(methods.STEPS, 'point-mae', dataclasses.replace(STEPS['point-mae'], config=missing))
    with pytest.raises(MethodError) as info:
        check_methods(['sam-mtp', 'point-mae'])
    assert str(info.value) == ('--methods point-mae: configs/sam_mtp/demo/point-mae_missing.py does not exist; this '
                               'checkout has no demo config of point-mae')


@pytest.mark.parametrize('methods, with_text', [(['sam-mtp', 'bridge3d'], True), (['sam-mtp', 'point-mae'], False)])
def test_bridge3d_gets_its_text_targets_once_before_any_pretraining(tmp_path, monkeypatch, methods, with_text):
    """Bridge3D's demo config reads text targets that the labels step does not make: the demo adds them to the
    train labels with tools/add_text_labels.py before the first pretraining run, and only for methods that need
    them."""
    demo = Demo(DemoSettings(work_dir=str(tmp_path / 'wd'), methods=methods, seeds=[0, 1]))
    calls = []
    monkeypatch.setattr(demo, 'run', lambda name, cmd, title, marker=True: calls.append((name, cmd)))
    monkeypatch.setattr(Demo, 'last_checkpoint', staticmethod(lambda work_dir: work_dir + '/epoch_1.pth'))
    demo.pretrain()
    names = [name for name, _ in calls]
    assert names.count('text_labels_train') == int(with_text)
    if with_text:
        assert names[0] == 'text_labels_train' and 'bridge3d_seed0' in names
        cmd = calls[0][1]
        assert osp.basename(cmd[1]) == 'add_text_labels.py' and cmd[2].endswith('labels/bridge3d_text_demo.py')
        assert cmd[cmd.index('--labels-root') + 1] == demo.label_root and cmd[cmd.index('--split') + 1] == 'train'
    assert names[-1] == ('bridge3d_seed1' if with_text else 'point-mae_seed1')


@pytest.mark.parametrize('methods, message', [
    (['point-mae'], 'must include sam-mtp'),
    (['sam-mtp', 'mae'], r"unknown \['mae'\]"),
    (['sam-mtp', 'stage1', 'stage1'], 'must be distinct'),
])
def test_bad_method_lists_are_refused_in_one_line(methods, message):
    with pytest.raises(MethodError, match=message) as info:
        check_methods(methods)
    assert '\n' not in str(info.value)


def test_finetune_jobs_pair_every_method_with_scratch_by_seed():
    encoders = {'pretrained': {0: 'a0.pth', 1: 'a1.pth'}, 'point-mae': {0: 'p0.pth', 1: 'p1.pth'}}
    jobs = finetune_jobs(['seg'], 'seg', [0.25], [0, 1], encoders)
    assert [(j['name'], j['checkpoint']) for j in jobs[:6]] == [
        ('seg_pretrained_seed0', 'a0.pth'), ('seg_point-mae_seed0', 'p0.pth'), ('seg_scratch_seed0', None),
        ('seg_pretrained_seed1', 'a1.pth'), ('seg_point-mae_seed1', 'p1.pth'), ('seg_scratch_seed1', None)]
    assert [j['name'] for j in jobs[6:9]] == ['seg_25pct_pretrained_seed0', 'seg_25pct_point-mae_seed0',
                                              'seg_25pct_scratch_seed0']
    assert all(j['fraction'] == 0.25 for j in jobs[6:]) and len(jobs) == 12


def test_every_method_is_compared_with_scratch_and_with_sam_mtp_as_computed_by_hand(tmp_path):
    demo = Demo(DemoSettings(work_dir=str(tmp_path / 'wd'), methods=['sam-mtp', 'point-mae', 'stage1']))
    assert demo._finetune_pairs() == [('pretrained', 'scratch'), ('point-mae', 'scratch'),
                                      ('point-mae', 'pretrained'), ('stage1', 'scratch'), ('stage1', 'pretrained')]
    # the probe: SAM-MTP's stage 1 already stands for the "stage1" method, so it is not probed twice
    assert demo._probe_pairs() == [('stage2', 'random-init'), ('stage1', 'random-init'), ('stage2', 'stage1'),
                                   ('point-mae', 'random-init'), ('point-mae', 'stage2')]
    values = {'pretrained': [0.40, 0.35, 0.45], 'point-mae': [0.30, 0.31, 0.38], 'scratch': [0.20, 0.30, 0.25]}
    runs = [dict(task='seg', init=init, seed=seed, fraction=1.0, metrics=dict(miou=v[seed]))
            for init, v in values.items() for seed in range(3)]
    comparisons = {(c['a_name'], c['b_name']): c for a, b in demo._finetune_pairs()
                   for c in report.paired_comparisons(runs, {'seg': ['miou']}, a=a, b=b)}
    against_reference = comparisons[('point-mae', 'pretrained')]
    diffs = [0.30 - 0.40, 0.31 - 0.35, 0.38 - 0.45]  # -0.10, -0.04, -0.07: mean -0.07, sample std 0.03
    mean = sum(diffs) / 3
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    half = 4.302652729749462 * std / math.sqrt(3)  # t_{0.975, 2}
    d = against_reference['diff']
    assert d['mean'] == pytest.approx(-0.07) and std == pytest.approx(0.03)
    assert (d['lo'], d['hi']) == (pytest.approx(-0.07 - half), pytest.approx(-0.07 + half))
    assert d['excludes_zero'] is False and d['n'] == 3  # half width 0.0745: [-0.1445, +0.0045] includes 0
    assert comparisons[('point-mae', 'scratch')]['diff']['mean'] == pytest.approx(np.mean([0.10, 0.01, 0.13]))
    assert ('stage1', 'pretrained') not in comparisons  # no stage1 runs given: no pairs, no row
