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
    (tmp_path / 'infos_train.pkl').write_bytes(pickle.dumps({'metainfo': {'dataset': 'scannet'},
                                                             'data_list': [{'sample_idx': 0}]}))
    check_dataset_files(_cfg(tmp_path), 'my_cfg.py')


def test_missing_data_root_hint_names_the_key_below_the_wrappers(tmp_path):
    """The hint is the dotted key --cfg-options needs: through RepeatDataset's dataset and ConcatDataset's list."""
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(ConfigCheckError) as info:
        check_dataset_files(_cfg(missing), 'my_cfg.py')
    assert str(info.value).endswith('--cfg-options train_dataloader.dataset.dataset.data_root=PATH')
    (tmp_path / 'b').mkdir()
    concat = Config(dict(val_dataloader=dict(dataset=dict(type='ConcatDataset', datasets=[
        dict(type='ScanNetDataset', data_root=str(tmp_path / 'b')),
        dict(type='RepeatDataset', times=2, dataset=dict(type='ScanNetDataset', data_root=missing))]))))
    with pytest.raises(ConfigCheckError) as info:
        check_dataset_files(concat, 'my_cfg.py')
    assert str(info.value).endswith('--cfg-options val_dataloader.dataset.datasets.1.dataset.data_root=PATH')
    # Following the hint fixes the config (the key exists and is the dataset's own data_root).
    concat.merge_from_dict({'val_dataloader.dataset.datasets.1.dataset.data_root': str(tmp_path / 'b')})
    check_dataset_files(concat, 'my_cfg.py')
    plain = Config(dict(test_dataloader=dict(dataset=dict(type='ScanNetDataset', data_root=missing))))
    with pytest.raises(ConfigCheckError) as info:
        check_dataset_files(plain, 'my_cfg.py')
    assert str(info.value).endswith('--cfg-options test_dataloader.dataset.data_root=PATH')


def _write_info(path, metainfo, data_list):
    path.write_bytes(pickle.dumps({'metainfo': metainfo, 'data_list': data_list}))
    return str(path)


@pytest.mark.parametrize('dataset_type,info_name,refused', [
    ('ScanNetDataset', 'sunrgbd', True),
    ('ScanNetDataset', 'SUNRGBD', True),  # mmdet3d's fixtures spell it in capitals
    ('SUNRGBDDataset', 'scannet', True),
    ('S3DISSegDataset', 'scannet', True),
    ('ScanNetSegDataset', 'scannet', False),
    ('ScanNetSegDataset', 'scannet200', False),
    ('SUNRGBDDataset', 'SUNRGBD', False),
    ('S3DISDataset', 's3dis', False),
    ('MyCustomDataset', 'sunrgbd', False),  # a type naming no known dataset is not judged
])
def test_info_file_of_another_dataset_is_refused(tmp_path, dataset_type, info_name, refused):
    ann = _write_info(tmp_path / 'infos_train.pkl', {'dataset': info_name}, [{'sample_idx': 0}])
    cfg = Config(dict(train_dataloader=dict(dataset=dict(type='RepeatDataset', times=2, dataset=dict(
        type=dataset_type, data_root=str(tmp_path), ann_file='infos_train.pkl')))))
    if not refused:
        check_dataset_files(cfg, 'my_cfg.py')
        return
    with pytest.raises(ConfigCheckError) as info:
        check_dataset_files(cfg, 'my_cfg.py')
    message = str(info.value)
    assert message.startswith(f'{ann}: a ') and f'(metainfo dataset={info_name!r})' in message
    assert f'train_dataloader.dataset.dataset of my_cfg.py is a {dataset_type}' in message
    assert '\n' not in message


def test_label_split_and_mmdet3d_infos_are_not_interchangeable(tmp_path):
    labels = _write_info(tmp_path / 'train_labels.pkl', {'feature_dim': 8, 'label_format_version': 1},
                         [{'label_path': 'a.npz'}])
    infos = _write_info(tmp_path / 'scannet_infos.pkl', {'dataset': 'scannet'}, [{'sample_idx': 0}])
    frames = Config(dict(train_dataloader=dict(dataset=dict(type='SamMtpFrameDataset', data_root=str(tmp_path),
                                                            ann_file='scannet_infos.pkl'))))
    with pytest.raises(ConfigCheckError, match=rf"^{infos}: an mmdet3d scannet info file \(its metainfo has no "
                                               r"feature_dim\), but train_dataloader.dataset of c.py is a "
                                               r"SamMtpFrameDataset"):
        check_dataset_files(frames, 'c.py')
    scannet = Config(dict(test_dataloader=dict(dataset=dict(type='ScanNetDataset', data_root=str(tmp_path),
                                                            ann_file='train_labels.pkl'))))
    with pytest.raises(ConfigCheckError, match=rf'^{labels}: a SAM-MTP label split .* is a ScanNetDataset'):
        check_dataset_files(scannet, 'c.py')


@pytest.mark.parametrize('phase,word', [('train', 'train on'), ('val', 'evaluate'), ('test', 'evaluate')])
def test_empty_info_file_is_refused(tmp_path, phase, word):
    ann = _write_info(tmp_path / 'infos.pkl', {'dataset': 'scannet'}, [])
    cfg = Config({f'{phase}_dataloader': dict(dataset=dict(type='ScanNetDataset', data_root=str(tmp_path),
                                                           ann_file='infos.pkl'))})
    with pytest.raises(ConfigCheckError) as info:
        check_dataset_files(cfg, 'c.py')
    assert str(info.value) == (f'{ann}: no samples (data_list is empty); {phase}_dataloader.dataset of c.py would '
                               f'have nothing to {word}')


def test_label_split_whose_frames_all_have_no_region_is_refused(tmp_path):
    ann = _write_info(tmp_path / 'train_labels.pkl', {'feature_dim': 8},
                      [{'label_path': 'a.npz', 'num_regions': 0}, {'label_path': 'b.npz', 'num_regions': 0}])
    cfg = Config(dict(train_dataloader=dict(dataset=dict(type='SamMtpFrameDataset', data_root=str(tmp_path),
                                                         ann_file='train_labels.pkl'))))
    with pytest.raises(ConfigCheckError, match=rf'^{ann}: no samples: all 2 frames have num_regions=0'):
        check_dataset_files(cfg, 'c.py')
    # One frame with a region is enough, and a dataset that keeps empty frames is not judged.
    _write_info(tmp_path / 'train_labels.pkl', {'feature_dim': 8},
                [{'label_path': 'a.npz', 'num_regions': 0}, {'label_path': 'b.npz', 'num_regions': 1}])
    check_dataset_files(cfg, 'c.py')
    _write_info(tmp_path / 'train_labels.pkl', {'feature_dim': 8}, [{'label_path': 'a.npz', 'num_regions': 0}])
    cfg.train_dataloader.dataset.skip_empty_frames = False
    check_dataset_files(cfg, 'c.py')


@pytest.mark.parametrize('model_type,label_dim,target_dim,refused', [
    ('SamMtpDistiller', 64, 768, True),
    ('SamMtpDistiller', 768, 64, True),
    ('SamMtpJointPretrainer', 64, 32, True),
    ('SamMtpDistiller', 64, 64, False),
    ('SamMtpMaskedTokenPredictor', 64, 768, False),  # stage 2 regresses its teacher, not the labels
])
def test_label_feature_dim_must_match_the_regressed_targets(tmp_path, model_type, label_dim, target_dim, refused):
    import projects.sam_mtp  # noqa: F401  (registers the models)
    ann = _write_info(tmp_path / 'train_labels.pkl', {'feature_dim': label_dim}, [{'label_path': 'a.npz'}])
    cfg = Config(dict(
        model=dict(type=model_type, projector=dict(type='TokenProjector', in_channels=32, out_channels=target_dim)),
        train_dataloader=dict(dataset=dict(type='SamMtpFrameDataset', data_root=str(tmp_path),
                                           ann_file='train_labels.pkl'))))
    if not refused:
        check_dataset_files(cfg, 'stage1.py')
        return
    with pytest.raises(ConfigCheckError) as info:
        check_dataset_files(cfg, 'stage1.py')
    assert str(info.value) == (
        f'{ann}: the labels have {label_dim}-d region features (metainfo feature_dim), but stage1.py regresses '
        f'{target_dim}-d targets (model.projector.out_channels); use labels of the config\'s feature source or '
        f'--cfg-options model.projector.out_channels={label_dim}')
    # Only training regresses the labels.
    cfg.val_dataloader = cfg.pop('train_dataloader')
    check_dataset_files(cfg, 'stage1.py')


def test_unknown_registry_name_is_explained_with_suggestion():
    from mmdet3d.registry import MODELS

    import projects.sam_mtp  # noqa: F401
    with pytest.raises(KeyError) as info:
        MODELS.build(dict(type='VoteNett'))
    explained = explain_registry_error(info.value, 'cfg.py')
    assert explained is not None
    assert 'cfg.py' in str(explained) and 'VoteNett' in str(explained)
    assert 'VoteNet' in str(explained).split('Did you mean')[1]


def test_other_key_errors_are_left_alone():
    assert explain_registry_error(KeyError('plain'), 'cfg.py') is None
