"""docs/benchmarks.md is generated: every numbers section equals the rendering of its recorded run's JSON
(docs/bench_runs/), and benchmarks/docs_tables.py replaces exactly the sections it has runs for."""
import json
import os.path as osp
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(ROOT, 'benchmarks'))

import bench_label_generation  # noqa: E402
import bench_tokenizers  # noqa: E402
import docs_tables  # noqa: E402

DOCS = osp.join(ROOT, 'docs', 'benchmarks.md')


def test_every_numbers_section_is_the_rendering_of_its_recorded_run():
    with open(DOCS) as f:
        text = f.read()
    for name, render in docs_tables.SECTIONS.items():
        with open(osp.join(ROOT, 'docs', docs_tables.RUNS_FOLDER, f'{name}.json')) as f:
            run = json.load(f)
        generated = docs_tables.section(text, name, DOCS)
        assert generated == render(run), f'docs/benchmarks.md section {name} was edited by hand or is stale'
        stamp = run.get('stamp', run.get('meta'))
        # a recorded run names the commit it measured, unmodified, and that stamp is in the section
        assert stamp['commit'] and not stamp['commit'].endswith('-dirty'), name
        assert stamp['date'] in generated and stamp['commit'] in generated
    assert docs_tables.check_docs(DOCS) == []


@pytest.fixture(scope='module')
def tiny_runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp('runs')
    assert bench_tokenizers.main(['--points', '3000', '--regions', '20', '--repeats', '1',
                                  '--out', str(runs / 'tokenizers.json')]) == 0
    bench_label_generation.main(['--frames', '2', '--num-points', '2000', '--regions', '12', '--feature-dim', '32',
                                 '--json', str(runs / 'label_generation.json')])
    return runs


def test_tiny_runs_are_stamped_and_rendered(tiny_runs):
    tokens = json.loads((tiny_runs / 'tokenizers.json').read_text())
    assert tokens['stamp']['command'].startswith('python benchmarks/bench_tokenizers.py --points 3000')
    assert tokens['stamp']['machine']['cores'] >= 1 and len(tokens['stamp']['load_average_end']) == 3
    row = tokens['rows'][0]
    assert row['points'] == 3000 and 20 < row['sam_tokens'] <= 20 + 32  # a token per region + fallback tokens
    assert row['speedup_vs_ops'] == pytest.approx(row['fps_knn_ops_ms'] / row['sam_guided_ms'])
    assert tokens['acceptance_10x_at_20k'] is None  # no 20k row: no verdict
    table = docs_tables.render_tokenizers(tokens)
    assert '| 3,000 | ' in table and 'acceptance' not in table and tokens['stamp']['date'] in table

    labels = json.loads((tiny_runs / 'label_generation.json').read_text())
    assert labels['frames'] == 1 and labels['regions'] == 12 and labels['num_points'] == 2000
    table = docs_tables.render_label_generation(labels)
    assert '12-region Voronoi stand-in' in table and 'random ViT, 32-d' in table
    geometry_plus_pooling = labels['geometry_plus_pooling']['median_ms']
    assert f'**{docs_tables._ms(geometry_plus_pooling)}**' in table


def test_update_replaces_only_the_sections_it_has_runs_for(tiny_runs, tmp_path):
    docs = tmp_path / 'docs' / 'benchmarks.md'
    docs.parent.mkdir()
    sections = {name: docs_tables.markers(name) for name in ('tokenizers', 'train_step')}
    docs.write_text('# Benchmarks\n\n' + ''.join(f'## {name}\n\n{b}\nold {name}\n{e}\n\ntext after {name}\n\n'
                                                  for name, (b, e) in sections.items()))
    assert docs_tables.update_docs(str(docs), str(tiny_runs), ['tokenizers', 'train_step']) == ['tokenizers']
    text = docs.read_text()
    tokens = json.loads((tiny_runs / 'tokenizers.json').read_text())
    assert docs_tables.section(text, 'tokenizers') == docs_tables.render_tokenizers(tokens)
    assert docs_tables.section(text, 'train_step') == 'old train_step\n'  # no run: left as it was
    assert 'text after tokenizers' in text and 'text after train_step' in text
    assert json.loads((tmp_path / 'docs' / 'bench_runs' / 'tokenizers.json').read_text()) == tokens
    docs_tables.update_docs(str(docs), str(tiny_runs), ['tokenizers'])
    assert docs.read_text() == text  # idempotent


def test_bad_docs_and_runs_are_refused_with_the_file_named(tiny_runs, tmp_path):
    docs = tmp_path / 'benchmarks.md'
    docs.write_text('# no markers\n')
    with pytest.raises(ValueError, match=r'benchmarks\.md: needs exactly one "<!-- bench:tokenizers:begin'):
        docs_tables.update_docs(str(docs), str(tiny_runs), ['tokenizers'])
    assert docs.read_text() == '# no markers\n'  # nothing written
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ValueError, match='empty: no benchmark JSON'):
        docs_tables.update_docs(str(docs), str(empty))
    (empty / 'train_step.json').write_text('{"stamp": ')
    with pytest.raises(ValueError, match=r'train_step\.json: cannot read a benchmark JSON'):
        docs_tables.update_docs(str(docs), str(empty))


def test_check_finds_a_hand_edited_section(tmp_path):
    import shutil
    shutil.copytree(osp.join(ROOT, 'docs', docs_tables.RUNS_FOLDER), tmp_path / docs_tables.RUNS_FOLDER)
    with open(DOCS) as f:
        text = f.read()
    begin, _ = docs_tables.markers('train_step')
    head, tail = text.split(begin, 1)
    edited = tail.replace(' s |', ' s (faster) |', 1)
    assert edited != tail
    (tmp_path / 'benchmarks.md').write_text(head + begin + edited)
    assert docs_tables.check_docs(str(tmp_path / 'benchmarks.md')) == ['train_step']
    assert docs_tables.main(['--check', '--docs', str(tmp_path / 'benchmarks.md')]) == 1
