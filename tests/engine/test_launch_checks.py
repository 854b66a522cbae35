"""Readable errors for configs that point at missing/malformed data or unknown module names."""
import pickle

import pytest
from mmengine.config import Config

from projects.sam_mtp.engine.launch import ConfigCheckError, check_dataset_files, explain_registry_error


def _cfg(data_root, ann_file='infos_train.pkl'):
    return Config(dict(train_dataloader=dict(dataset=dict(
        type='RepeatDataset', times=2,
        dataset=dict(type='ScanNetDataset', data_root=str(data_root), ann_file=ann_file)))))


def test_missing_data_root_names_config_and_path(tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(ConfigCheckError, match=r'my_cfg\.py.*nowhere.*does not exist'):
        check_dataset_files(_cfg(missing), 'my_cfg.py')


def test_missing_annotation_file(tmp_path):
    with pytest.raises(ConfigCheckError, match=r'my_cfg\.py.*infos_train\.pkl.*does not exist'):
        check_dataset_files(_cfg(tmp_path), 'my_cfg.py')


@pytest.mark.parametrize('content,problem', [
    (b'not a pickle', 'cannot be read as a pickle'),
    (pickle.dumps([{'sample_idx': 0}]), 'malformed'),
    (pickle.dumps({'infos': []}), 'malformed'),
])
def test_malformed_info_file(tmp_path, content, problem):
    (tmp_path / 'infos_train.pkl').write_bytes(content)
    with pytest.raises(ConfigCheckError, match=problem):
        check_dataset_files(_cfg(tmp_path), 'my_cfg.py')


def test_valid_info_file_passes(tmp_path):
    (tmp_path / 'infos_train.pkl').write_bytes(pickle.dumps({'metainfo': {}, 'data_list': []}))
    check_dataset_files(_cfg(tmp_path), 'my_cfg.py')


def test_unknown_registry_name_is_explained_with_suggestion():
    import projects.sam_mtp  # noqa: F401
    from mmdet3d.registry import MODELS
    with pytest.raises(KeyError) as info:
        MODELS.build(dict(type='VoteNett'))
    explained = explain_registry_error(info.value, 'cfg.py')
    assert explained is not None
    assert 'cfg.py' in str(explained) and 'VoteNett' in str(explained)
    assert 'VoteNet' in str(explained).split('Did you mean')[1]


def test_other_key_errors_are_left_alone():
    assert explain_registry_error(KeyError('plain'), 'cfg.py') is None
