"""`make demo` at a tiny size, end to end and in this process (projects/sam_mtp/demo/runner.py runs the tools'
main(argv), as the demo's subprocesses would run them): report.json's fields, a rerun that resumes instead of
recomputing, the same numbers when a stage-1 run and a fine-tuning run are redone, pretrained/scratch pairs that
share everything but the encoder, and docs/demo_results.md generated from the reports."""
import json
import os
import os.path as osp
import shutil

import pytest

from projects.sam_mtp.demo import finetune
from projects.sam_mtp.demo.results_page import ResultsPageError, write_results_page
from projects.sam_mtp.demo.runner import Demo, run_demo
from projects.sam_mtp.demo.settings import DemoSettings

TASK = '3detr'  # the cheapest fine-tuning task; the segmentor's config path is covered by test_finetune_config_*
TINY = dict(work_dir='wd', data_root='data/scannet', train_scenes=2, val_scenes=1, frames_per_scene=2,
            points_per_scene=5000, seeds=[0], tasks=[TASK], label_task=TASK, label_fractions=[0.5],
            pretrain_epochs=2, finetune_epochs=1, label_cfg_options=['label_cfg.num_groups=4'], in_process=True)


def _tiny(**changes):
    return DemoSettings(**dict(TINY, **changes))


def _in(folder, fn, *args):
    """``fn(*args)`` with ``folder`` as working directory; restores torch's deterministic-algorithms switch,
    which the seeded runs turn on for the whole process."""
    import torch
    cwd, deterministic = os.getcwd(), torch.are_deterministic_algorithms_enabled()
    os.chdir(folder)
    try:
        return fn(*args)
    finally:
        os.chdir(cwd)
        torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(scope='module')
def tiny_demo(tmp_path_factory):
    """One tiny demo run in a temporary folder: (folder, report dict)."""
    folder = tmp_path_factory.mktemp('demo')
    return folder, _in(folder, run_demo, _tiny())


def test_report_json_has_the_comparison_probe_curve_environment_and_timings(tiny_demo):
    folder, _ = tiny_demo
    with open(folder / 'wd' / 'report.json') as f:
        report = json.load(f)
    assert report['schema'] == 2 and report['settings']['seeds'] == [0]
    assert {(r['task'], r['fraction'], r['init']) for r in report['runs']} == {
        (TASK, f, i) for f in (1.0, 0.5) for i in ('pretrained', 'scratch')}
    assert all(set(r['metrics']) >= {'AP25', 'AP50'} for r in report['runs'])
    keys = {(c['task'], c['fraction'], c['metric']) for c in report['comparisons']}
    assert (TASK, 1.0, 'AP25') in keys and (TASK, 0.5, 'AP25') in keys
    for c in report['comparisons']:
        assert c['diff']['n'] == 1 and set(c['diff']) == {'mean', 'lo', 'hi', 'n', 'excludes_zero'}
    probe = report['probe']
    assert sorted(r['init'] for r in probe['runs']) == ['random-init', 'stage1', 'stage2']
    assert all(0 <= r['metrics']['miou'] <= 1 and r['coverage'] > 0.5 for r in probe['runs'])
    pairs = {(c['a_name'], c['b_name'], c['metric']): c for c in probe['comparisons']}
    assert set(pairs) == {(a, b, m) for a, b in (('stage2', 'random-init'), ('stage1', 'random-init'),
                                                  ('stage2', 'stage1')) for m in ('miou', 'acc')}
    miou = {r['init']: r['metrics']['miou'] for r in probe['runs']}
    assert pairs[('stage2', 'stage1', 'miou')]['diff']['mean'] == pytest.approx(miou['stage2'] - miou['stage1'])
    assert 'stage2 vs stage1' in (folder / 'wd' / 'report.md').read_text()
    env = report['environment']
    assert env['date'] and env['machine']['cpu_count'] >= 1 and 'torch' in env['versions']
    assert {'data', 'labels_train', 'labels_val', 'stage1_seed0', 'stage2_seed0', 'probe_seeds0',
            'finetune_runs'} <= set(report['timings_s'])
    for picture in ('loss_curves', 'tokens_and_features', 'label_efficiency'):
        assert osp.isfile(folder / report['pictures'][picture]), picture
    text = (folder / 'wd' / 'report.md').read_text()
    assert '## Frozen-feature linear probe' in text and '## Label efficiency' in text and 't-interval' in text


def test_rerun_resumes_every_step_and_gives_the_same_report(tiny_demo, capsys):
    folder, first = tiny_demo
    result = folder / 'wd' / 'finetune' / f'{TASK}_pretrained_seed0' / 'result.json'
    stamp = result.stat().st_mtime_ns
    capsys.readouterr()
    second = _in(folder, run_demo, _tiny())
    out = capsys.readouterr().out
    for step in ('1/6', '2/6 labels, val', '2/6 scene segments', '3/6 seed 0 stage 1', '3/6 seed 0 stage 2', '4/6',
                 '5/6'):
        assert any(step in line and 'already done' in line for line in out.splitlines()), step
    assert result.stat().st_mtime_ns == stamp
    same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # noqa: E731 (NaN-safe)
    assert same(second['runs'], first['runs']) and same(second['probe'], first['probe'])
    assert same(second['comparisons'], first['comparisons'])


def test_settings_change_is_refused_without_fresh(tiny_demo):
    folder, _ = tiny_demo
    with pytest.raises(SystemExit, match='other settings.*finetune_epochs: 1 -> 3'):
        _in(folder, run_demo, _tiny(finetune_epochs=3))


def test_stage1_and_finetune_give_the_same_numbers_when_redone(tiny_demo):
    """Determinism: redo seed 0's stage 1 and one fine-tuning run from scratch; losses and metrics must be equal
    to the last bit (mmengine randomness seeded, deterministic kernels)."""
    from projects.sam_mtp.demo.report import find_log, parse_train_losses
    folder, first = tiny_demo
    wd = folder / 'wd'
    stage1 = wd / 'pretrain' / 'seed0' / 'stage1'
    before = parse_train_losses(find_log(str(stage1)))
    assert len(before['loss']) >= 2 and len(set(before['loss'])) > 1
    shutil.move(str(stage1), str(wd / 'stage1_first'))
    os.remove(wd / 'done' / 'stage1_seed0')
    run = wd / 'finetune' / f'{TASK}_pretrained_seed0'
    shutil.move(str(run), str(wd / 'finetune_first'))


    def redo():  # the demo's pretraining and fine-tuning steps only (no probe, no report)
        steps = Demo(_tiny())
        steps.pretrain()
        steps.finetune()

    _in(folder, redo)
    after = parse_train_losses(find_log(str(stage1)))
    assert after == before
    redone = json.loads((run / 'result.json').read_text())
    (old, ) = [r for r in first['runs'] if r['name'] == f'{TASK}_pretrained_seed0']
    assert redone['raw_metrics'] == old['raw_metrics'] and redone['metrics'] == old['metrics']
    ft_before = parse_train_losses(find_log(str(wd / 'finetune_first')))
    ft_after = parse_train_losses(find_log(str(run)))
    assert ft_after == ft_before and len(ft_before['loss']) >= 1


def test_pretrained_and_scratch_runs_of_a_pair_differ_only_in_the_encoder(tiny_demo):
    """Same seed: the pretrained run loads the checkpoint after the same random initialisation, so every weight
    outside the encoder (the head) starts identical, and the encoder differs."""
    import torch
    from mmdet3d.registry import MODELS
    from mmengine.runner import set_random_seed

    import projects.sam_mtp  # noqa: F401
    folder, _ = tiny_demo
    checkpoint = Demo.last_checkpoint(str(folder / 'wd' / 'pretrain' / 'seed0' / 'stage2'))
    models = {}
    for init in ('pretrained', 'scratch'):
        job = dict(name='x', task=TASK, fraction=1.0, init=init, seed=3, checkpoint=checkpoint)
        cfg = _in(folder, finetune.finetune_config, job, 'data/scannet', 1)
        set_random_seed(3)
        model = MODELS.build(cfg.model)
        model.init_weights()
        models[init] = dict(model.named_parameters())
    pre, scratch = models['pretrained'], models['scratch']
    assert pre.keys() == scratch.keys()
    encoder = [k for k in pre if k.startswith('backbone.encoder.')]
    assert encoder and all(not torch.equal(pre[k], scratch[k]) for k in encoder if pre[k].numel() > 1
                           and 'norm' not in k and 'bias' not in k)
    others = [k for k in pre if not k.startswith('backbone.encoder.')]
    assert others and all(torch.equal(pre[k], scratch[k]) for k in others)


def test_finetune_config_restricts_training_scenes_for_detection_and_segmentation(tiny_demo):
    folder, _ = tiny_demo
    cfg = _in(folder, finetune.finetune_config, dict(name='x', task='3detr', fraction=0.5, init='scratch', seed=0,
                                                 checkpoint=None), 'data/scannet', 1)
    subset = finetune.training_subset(2, 0.5, 0)
    assert cfg.train_dataloader.dataset.times == 2 and cfg.train_dataloader.dataset.dataset.indices == subset
    assert cfg.randomness == dict(seed=0, deterministic=True) and cfg.model.backbone.init_cfg is None
    seg = _in(folder, finetune.finetune_config, dict(name='x', task='seg', fraction=0.5, init='scratch', seed=0,
                                                 checkpoint=None), 'data/scannet', 1)
    import numpy as np
    full = np.load(folder / 'data' / 'scannet' / 'seg_info' / 'train_resampled_scene_idxs.npy')
    idxs = seg.train_dataloader.dataset.scene_idxs
    assert set(idxs) == set(subset) and len(idxs) == 2 * int(np.isin(full, subset).sum())
    assert seg.train_dataloader.dataset.data_root == 'data/scannet/'


def test_training_subsets_are_seeded_nested_and_never_empty():
    assert finetune.training_subset(12, 0.25, 0) == finetune.training_subset(12, 0.25, 0)
    assert finetune.training_subset(12, 0.25, 0) != finetune.training_subset(12, 0.25, 1)
    assert set(finetune.training_subset(12, 0.25, 4)) <= set(finetune.training_subset(12, 0.5, 4))
    assert len(finetune.training_subset(12, 0.25, 0)) == 3 and len(finetune.training_subset(12, 0.01, 0)) == 1


def test_docs_are_generated_from_reports_with_the_run_to_run_spread(tiny_demo, tmp_path):
    folder, _ = tiny_demo
    path = folder / 'wd' / 'report.json'
    report = json.loads(path.read_text())
    changed = json.loads(path.read_text())
    changed['runs'][0]['metrics']['AP25'] += 0.25
    changed['environment']['date'] = '2099-01-01 00:00 UTC'
    other = tmp_path / 'rerun.json'
    other.write_text(json.dumps(changed))
    stand_in = json.loads(path.read_text())
    stand_in['settings']['targets'] = 'random-vit'
    stand_in_path = tmp_path / 'stand_in.json'
    stand_in_path.write_text(json.dumps(stand_in))
    out = tmp_path / 'docs' / 'demo_results.md'
    _in(folder, write_results_page, [str(path), str(path)], str(out), str(tmp_path / 'docs' / 'images'),
        str(stand_in_path), 'real 1m0s')
    text = out.read_text()
    assert 'is **identical**' in text and report['environment']['date'] in text and 'real 1m0s' in text
    assert (report['environment']['commit'] or 'unknown')[:10] in text
    assert '## The same comparison with the random-ViT targets' in text and 'random-vit targets' in text
    assert '## What this demo can and cannot show' in text and 'supervised by proxy' in text
    assert '## Methods' not in text and 'favours the methods that regress the targets' not in text
    assert '## Across machines' not in text
    assert '![label efficiency](images/demo_label_efficiency.png)' in text
    assert (tmp_path / 'docs' / 'images' / 'demo_label_efficiency.png').is_file()
    _in(folder, write_results_page, [str(path), str(other)], str(out), str(tmp_path / 'docs' / 'images'))
    assert 'differ, by at most 0.25' in out.read_text()
    # the same report from another CPU type, but for one run's AP25 (its stored comparison is left as it was)
    changed['environment']['machine']['cpu'] = 'Other CPU'
    other.write_text(json.dumps(changed))
    _in(folder, write_results_page, [str(path)], str(out), str(tmp_path / 'docs' / 'images'), None, None, str(other))
    text = out.read_text()
    assert '## Across machines' in text and 'The same command on Other CPU (2099-01-01 00:00 UTC): **1 of ' in text
    assert '**0 of ' in text and 'calls of the reading give the other verdict (none)' in text
    bad = dict(report, settings=dict(report['settings'], seeds=[0, 1]))
    (tmp_path / 'bad.json').write_text(json.dumps(bad))
    with pytest.raises(ResultsPageError, match='same settings.*seeds'):
        write_results_page([str(path), str(tmp_path / 'bad.json')], str(out), str(tmp_path / 'docs' / 'images'))


def test_a_second_method_adds_its_runs_and_comparisons_without_changing_sam_mtps(tiny_demo, tmp_path, capsys):
    """--methods sam-mtp point-mae on a copy of the tiny demo: SAM-MTP's steps are reused, Point-MAE pretrains,
    fine-tunes and is probed per seed, and is compared with scratch and with SAM-MTP."""
    folder, first = tiny_demo
    copy = tmp_path / 'demo'
    shutil.copytree(folder, copy)
    settings = copy / 'wd' / 'done' / 'settings.json'  # the data root it records is absolute: the copy's own
    settings.write_text(json.dumps(dict(json.loads(settings.read_text()), data_root=str(copy / 'data' / 'scannet'))))
    capsys.readouterr()
    second = _in(copy, run_demo, _tiny(methods=['sam-mtp', 'point-mae']))
    out = capsys.readouterr().out
    assert any('3/6 seed 0 stage 1' in line and 'already done' in line for line in out.splitlines())
    assert any('3/6 seed 0 Point-MAE' in line and 'already done' not in line for line in out.splitlines())
    assert second['settings']['methods'] == ['sam-mtp', 'point-mae']
    assert second['methods']['point-mae']['configs'] == ['configs/sam_mtp/demo/point-mae_plain-transformer_1xb8-30e_synthetic-scannet-frames.py']
    same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # noqa: E731 (NaN-safe)
    sam_mtp_runs = [r for r in second['runs'] if r['init'] in ('pretrained', 'scratch')]
    assert same([r['metrics'] for r in sam_mtp_runs], [r['metrics'] for r in first['runs']])
    metric = {(r['init'], r['fraction']): r['metrics']['AP50'] for r in second['runs']}
    assert {i for i, _ in metric} == {'pretrained', 'point-mae', 'scratch'}
    pairs = {(c['a_name'], c['b_name'], c['fraction'], c['metric']): c for c in second['comparisons']}
    for fraction in (1.0, 0.5):
        against = pairs[('point-mae', 'pretrained', fraction, 'AP50')]['diff']['mean']
        assert against == pytest.approx(metric[('point-mae', fraction)] - metric[('pretrained', fraction)])
        assert ('point-mae', 'scratch', fraction, 'AP50') in pairs and ('pretrained', 'scratch', fraction,
                                                                        'AP50') in pairs
    probe = {r['init']: r['metrics']['miou'] for r in second['probe']['runs']}
    assert set(probe) == {'random-init', 'stage1', 'stage2', 'point-mae'}
    assert same({k: v for k, v in probe.items() if k != 'point-mae'},
                {r['init']: r['metrics']['miou'] for r in first['probe']['runs']})
    probe_pairs = {(c['a_name'], c['b_name'], c['metric']): c for c in second['probe']['comparisons']}
    assert probe_pairs[('point-mae', 'stage2', 'miou')]['diff']['mean'] == pytest.approx(
        probe['point-mae'] - probe['stage2'])
    assert ('point-mae', 'random-init', 'miou') in probe_pairs
    text = (copy / 'wd' / 'report.md').read_text()
    assert '## Methods' in text and '| point-mae | Point-MAE' in text and 'point-mae vs pretrained' in text
    assert '| method | 3detr AP25 | - scratch (95% interval) | - SAM-MTP | probe miou |' in text
    # one seed: the method's mean is its one run
    assert '\n| point-mae | ' + f'{metric[("point-mae", 1.0)]:.3f} | ' in text
    # the docs page of the methods run, with the single-method run of the same settings as its rerun
    out = tmp_path / 'demo_results.md'
    write_results_page([str(copy / 'wd' / 'report.json'), str(folder / 'wd' / 'report.json')], str(out),
                       str(tmp_path / 'images'))
    page = out.read_text()
    assert '## Methods' in page and '| method | 3detr AP25 | - scratch (95% interval) |' in page
    assert 'favours the methods that regress the targets' in page
    assert 'metrics and losses compared is **identical**' in page  # SAM-MTP's values, shared by both reports
