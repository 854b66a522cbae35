"""tools/label_stats.py: the statistics that size the token budget, against counts made by hand."""
import importlib.util
import json
import os

import numpy as np
from helpers.labels import make_frame_arrays, write_label_split

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool():
    spec = importlib.util.spec_from_file_location('label_stats', os.path.join(ROOT, 'tools', 'label_stats.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_label_stats_table_json_and_histogram(tmp_path, capsys):
    rng = np.random.default_rng(0)
    sizes = [(40, 30, 20, 5), (25, 18, 12), (16, 16, 15, 100, 3)]
    frames = [make_frame_arrays(rng, s, num_unassigned=n, num_groups=3) for s, n in zip(sizes, (10, 0, 7))]
    write_label_split(str(tmp_path / 'labels'), frames)
    out = tmp_path / 'stats'
    tool = _tool()
    assert tool.main([str(tmp_path / 'labels'), '--min-points', '16', '--caps', '2', '4', '--out-dir', str(out)]) == 0
    with open(out / 'label_stats_train.json') as f:
        stats = json.load(f)
    # by hand: regions per frame 4, 3, 5; regions with >= 16 points 3, 2, 3
    assert stats['num_frames'] == 3
    assert stats['regions_per_frame']['max'] == 5 and stats['regions_per_frame']['min'] == 3
    assert stats['histograms']['tokens_per_frame'] == [3, 2, 3] and stats['max_tokens_covering_all_frames'] == 3
    all_sizes = sorted(v for s in sizes for v in s)
    assert stats['points_per_region']['count'] == len(all_sizes)
    assert stats['points_per_region']['max'] == 100 and stats['points_per_region']['p50'] == np.median(all_sizes)
    assert stats['unassigned_point_fraction']['max'] == 10 / 105
    # a cap of 2 makes 2 of 3 frames merge regions: 1 + 0 + 1 of 8 region tokens
    assert stats['caps'] == [dict(max_tokens=2, frames_over_cap=2 / 3, regions_merged=2 / 8),
                             dict(max_tokens=4, frames_over_cap=0.0, regions_merged=0.0)]
    groups = np.bincount(np.concatenate([f['region_group'] for f in frames]), minlength=3)
    assert stats['group_counts'] == groups.tolist()
    assert stats['stamp']['date'] and stats['stamp']['machine']
    assert (out / 'label_stats_train.png').stat().st_size > 10000
    printed = capsys.readouterr().out
    assert '| SAM regions per frame | 4 | 3 |' in printed and '| 2 | 66.67% | 25.00% |' in printed
    assert tool.main(['--from-json', str(out / 'label_stats_train.json')]) == 0
    assert capsys.readouterr().out.strip() == (out / 'label_stats_train.md').read_text().strip()
    assert tool.main([str(tmp_path / 'nowhere')]) == 1
