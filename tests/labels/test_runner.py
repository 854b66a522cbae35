"""The job runner both label pipelines share (labels/runner/jobs.py) on a toy job, its merge lock, and the
segmenter registry (labels/segments/segmenters.py), whose settings must keep the fingerprints of the files made
before it."""
import json
import os
import zlib

import pytest

from projects.sam_mtp.labels.runner.jobs import JobError, ShardJob, merge_after_last_shard, run_shard

KEYS = [f'scene{i:04d}' for i in range(24)]


class ToyError(JobError):
    kinds = ('no_data', 'broken', 'error')


class ToyJob(ShardJob):
    """Items are keys; ``done`` ones are finished, ``fails[key]`` is what processing (or writing) raises."""
    unit = 'toys'
    skip_kinds = ('no_data', )

    def __init__(self, folder, done=(), fails=None, write_fails=()):
        self.folder, self.done, self.fails, self.write_fails = folder, set(done), fails or {}, set(write_fails)

    def key(self, item):
        return item

    def state(self, item):
        return 'done' if item in self.done else 'missing'

    def process(self, item, loaded, stats):
        if item in self.fails:
            raise self.fails[item]
        stats['work'] = 1.0
        return item.upper()

    def write(self, item, output):
        if item in self.write_fails:
            raise OSError('disk full')
        with open(os.path.join(self.folder, item), 'w') as f:
            f.write(output)

    def report_path(self, shard):
        return os.path.join(self.folder, f'report-{shard[0]}-{shard[1]}.json')

    def report(self, outcome):
        return dict(num=outcome.num_items, done=outcome.already_done, written=outcome.written,
                    failures={f.key: f.kind for f in outcome.failures}, fraction=outcome.failure_fraction,
                    over=outcome.over_budget, stats=outcome.stats)


@pytest.mark.parametrize('write_behind', [False, True])
def test_a_shard_skips_finished_items_records_failures_by_kind_and_writes_its_report(tmp_path, write_behind):
    mine = [k for k in KEYS if zlib.crc32(k.encode()) % 3 == 1]  # the shard's items, by the documented rule
    assert 6 <= len(mine) <= 12
    done, skip, broken, bug, unwritable = mine[0], mine[1], mine[2], mine[3], mine[4]
    job = ToyJob(str(tmp_path), done=[done], write_fails=[unwritable],
                 fails={skip: ToyError('no_data', skip, 'nothing here'), broken: ToyError('broken', broken, 'bad'),
                        bug: ZeroDivisionError('oops')})
    report = run_shard(job, KEYS, (1, 3), progress=False, max_failure_fraction=0.3, read_workers=2,
                       write_behind=write_behind)
    written = sorted(set(mine) - {done, skip, broken, bug, unwritable})
    assert sorted(os.listdir(tmp_path)) == sorted(written + ['report-1-3.json'])
    assert report['num'] == len(mine) and report['done'] == 1 and report['written'] == len(written)
    assert report['failures'] == {skip: 'no_data', broken: 'broken', bug: 'error', unwritable: 'error'}
    # the skip kind is recorded but not held against the budget: 3 of the shard's items count
    assert report['fraction'] == pytest.approx(3 / len(mine))
    assert report['over'] == (3 / len(mine) > 0.3)
    assert sorted(report['stats']) == written and all(set(s) == {'read', 'work', 'write'}
                                                      for s in report['stats'].values())
    assert json.loads((tmp_path / 'report-1-3.json').read_text()) == report
    # A rerun finds the written items finished (the toy's state) and does nothing else.
    rerun = run_shard(ToyJob(str(tmp_path), done=mine), KEYS, (1, 3), progress=False)
    assert rerun['done'] == len(mine) and rerun['written'] == 0 and rerun['failures'] == {}


def test_a_failing_state_check_is_a_failure_not_a_crash(tmp_path):
    class Refusing(ToyJob):
        def state(self, item):
            if item == KEYS[0]:
                raise ToyError('broken', item, 'file of another method')
            return super().state(item)

    report = run_shard(Refusing(str(tmp_path)), KEYS, progress=False)
    assert report['failures'] == {KEYS[0]: 'broken'} and report['written'] == len(KEYS) - 1
    assert report['done'] == 0 and report['fraction'] == pytest.approx(1 / len(KEYS))


def test_the_last_shard_merges_under_the_lock(tmp_path):
    reports = [str(tmp_path / f'shard-{i}-of-2.json') for i in range(2)]
    lock = str(tmp_path / '_work' / 'merge.lock')
    merged = []
    open(reports[0], 'w').close()
    assert not merge_after_last_shard(reports, lock, lambda: merged.append(1)) and merged == []  # shard 1 missing
    open(reports[1], 'w').close()
    os.makedirs(os.path.dirname(lock))
    open(lock, 'w').close()  # another process is merging
    assert not merge_after_last_shard(reports, lock, lambda: merged.append(1)) and merged == []
    os.remove(lock)
    assert merge_after_last_shard(reports, lock, lambda: merged.append(os.path.exists(lock)))
    assert merged == [True] and not os.path.exists(lock)  # held while merging, released after

    def failing():
        raise RuntimeError('merge failed')

    with pytest.raises(RuntimeError, match='merge failed'):
        merge_after_last_shard(reports, lock, failing)
    assert not os.path.exists(lock)


# ---------------------------------------------------------------------------------------------------- segmenters
# Fingerprints of these settings as the code before the segmenter registry recorded them (source= configs); a
# segment file carrying them must still count as finished.
FINGERPRINTS_BEFORE_THE_REGISTRY = [
    (dict(type='GeometricSegmenter', voxel_size=0.05), None, None, {'geometric': 'f93eb03618f02a85'}),
    (dict(type='SingleImageSegmenter', pixel_origin=1, image_dir='img'),
     dict(type='InstanceImageMaskSource', folder='instance'), None, {'sam_single_image': '40bb7b3fa9edb893'}),
    (dict(type='S3DIS2D3DSSegmenter', registration=dict(grid=0.1)), dict(type='InstanceImageMaskSource'),
     dict(type='GeometricSegmenter'), {'sam_multi_view': 'ef1333a8a0395bab', 'geometric': '7c4ed6754233701a'}),
    (dict(type='PosedFramesSegmenter', frame_stride=5), dict(type='InstanceImageMaskSource'), None,
     {'sam_multi_view': 'e57f7c0b86858a46'}),
]


@pytest.mark.parametrize('segment_cfg, mask_source, fallback_cfg, expected', FINGERPRINTS_BEFORE_THE_REGISTRY)
def test_registered_segmenters_keep_the_fingerprints_of_earlier_files(segment_cfg, mask_source, fallback_cfg,
                                                                      expected):
    from projects.sam_mtp.labels.runner.output_dir import settings_fingerprint
    from projects.sam_mtp.labels.segments.jobs import segment_output_settings
    settings = segment_output_settings(segment_cfg, mask_source, None, fallback_cfg)
    assert {method: settings_fingerprint(s) for method, s in settings.items()} == expected


def test_segmenters_are_chosen_by_type_or_by_their_recorded_source_name(tmp_path):
    from mmdet3d.registry import TASK_UTILS

    from projects.sam_mtp.labels.segments.segmenters import (
        SAM_SOURCES,
        GeometricSegmenter,
        SegmentInputs,
        build_segmenter,
        merge_source_cfg,
    )
    assert TASK_UTILS.get('GeometricSegmenter') is GeometricSegmenter
    by_type = merge_source_cfg(dict(type='SingleImageSegmenter', camera='CAM1'))
    assert by_type == merge_source_cfg(dict(source='single_image', camera='CAM1'))
    assert by_type == dict(image_dir='', camera='CAM1', pixel_origin=0, mask_size=None, min_segment_points=1,
                           source='single_image')
    assert SAM_SOURCES == ('posed_frames', 'single_image', 's3dis_2d3ds')
    with pytest.raises(KeyError, match=r"segment_cfg\.type must be one of \[.*'GeometricSegmenter'.*\], got 'X'"):
        merge_source_cfg(dict(type='X'))
    with pytest.raises(KeyError, match="is the 'geometric' source, not 'single_image'"):
        merge_source_cfg(dict(type='GeometricSegmenter', source='single_image'))
    segmenter = build_segmenter(dict(source='geometric', threshold=0.3), str(tmp_path))
    assert type(segmenter) is GeometricSegmenter and segmenter.cfg['threshold'] == 0.3
    assert segmenter.settings['source'] == 'geometric' and segmenter.method == 'geometric'
    with pytest.raises(ValueError, match='needs frames_root'):
        TASK_UTILS.build(dict(type='PosedFramesSegmenter'), default_args=dict(inputs=SegmentInputs(str(tmp_path))))
