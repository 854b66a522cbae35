"""benchmarks/bench_point_ops.py and point_ops_table.py at a tiny size: the JSON it writes, the exactness check
against the previous version, and the docs section regenerated from that JSON (by docs_tables.py)."""
import json
import os.path as osp
import sys

import numpy as np
import pytest

BENCH_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'benchmarks')
sys.path.insert(0, BENCH_DIR)

pytest.importorskip('numba', reason='numba is not installed: no CPU kernels to benchmark')
import bench_point_ops  # noqa: E402
import docs_tables  # noqa: E402
import point_ops_table  # noqa: E402


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench') / 'point_ops.json'
    bench_point_ops.main(['--sizes', '1500:64', '--repeats', '2', '--previous-repeats', '1', '--batch-threads', '2',
                          '--batch-size', '1500:64', '--no-train-steps', '--no-compile-time', '--out', str(out)])
    with open(out) as f:
        return json.load(f)


def test_room_scene_lies_on_the_room_surfaces():
    scene = bench_point_ops.room_scene(3000, seed=1)
    xyz = scene['xyz']
    assert xyz.shape == (3000, 3) and xyz.dtype == np.float32
    assert (xyz >= 0).all() and (xyz <= [8, 8, 3]).all()
    on_floor_or_wall = (np.abs(xyz[:, 2]) < 0.03) | (np.minimum(xyz[:, :2], 8 - xyz[:, :2]).min(1) < 0.03)
    assert on_floor_or_wall.mean() > 0.5  # the floor and walls hold most of the area
    in_box = scene['instance'] > 0
    assert in_box.any() and (scene['semantic'][~in_box] == bench_point_ops.NUM_CLASSES).all()
    assert ((scene['segment'] == -1).mean() - 0.1) ** 2 < 0.02 ** 2
    # a box's points lie on its surface: inside its extent
    box = scene['boxes'][0]
    points = xyz[scene['instance'] == 1]
    assert (np.abs(points - box[:3]) <= box[3:6] / 2 + 0.03).all()


def test_benchmark_json_has_every_op_with_ratios_and_exactness(run):
    ops = {row['op'] for row in run['ops']}
    assert ops == set(bench_point_ops.TARGETS)
    for row in run['ops']:
        assert row['identical_to_previous'] is True, row['op']
        assert len(row['times_ms']['ours']) == 2 and len(row['times_ms']['previous']) == 1
        assert row['median_ms']['ours'] > 0
        if row['best_peer'] is not None:
            ratio = row['median_ms']['ours'] / row['median_ms'][row['best_peer']]
            assert row['ours_over_best_peer'] == pytest.approx(ratio)
            assert row['met'] == (ratio <= row['target'])
    assert run['meta']['threads'] == 1 and run['meta']['machine']['cores'] >= 1
    assert set(run['threads']['ops']) == {'furthest_point_sample', 'knn', 'ball_query', 'three_nn'}


def test_docs_section_is_regenerated_from_the_json(run, tmp_path):
    begin, end = docs_tables.markers('point_ops')
    docs = tmp_path / 'docs' / 'benchmarks.md'
    docs.parent.mkdir()
    docs.write_text(f'# Benchmarks\n\nintro\n\n{begin}\nold numbers\n{end}\n\n## Next section\n')
    runs = tmp_path / 'runs'
    runs.mkdir()
    (runs / 'point_ops.json').write_text(json.dumps(run))
    assert docs_tables.main([str(runs), '--docs', str(docs)]) == 0
    text = docs.read_text()
    assert 'old numbers' not in text and text.startswith('# Benchmarks\n\nintro') and '## Next section' in text
    assert run['meta']['date'] in text and run['meta']['commit'] in text
    assert run['meta']['machine']['cpu'] in text
    ours = {row['op']: row['median_ms']['ours'] for row in run['ops']}
    assert point_ops_table._ms(ours['knn']) in text
    assert json.loads((tmp_path / 'docs' / 'bench_runs' / 'point_ops.json').read_text()) == run
    # once more: idempotent
    docs_tables.main([str(runs), '--docs', str(docs)])
    assert docs.read_text() == text
