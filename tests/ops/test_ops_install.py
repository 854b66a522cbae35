"""Installation of the dispatchers into mmcv / mmdet3d and device routing."""
import importlib
import sys
import types

import pytest
import torch

import projects.sam_mtp.ops as sam_ops
from projects.sam_mtp.ops import dispatch

mmcv_ops = pytest.importorskip('mmcv.ops')

OPS = sorted(dispatch.DISPATCHERS)


@pytest.fixture
def reinstall():
    """Leave the process with the dispatchers installed whatever happens."""
    yield
    sam_ops.install_cpu_fallbacks()


def test_mmcv_ops_and_submodules_bind_dispatchers():
    assert sam_ops.cpu_fallbacks_installed()
    for name in OPS:
        assert getattr(mmcv_ops, name) is dispatch.DISPATCHERS[name], name
        assert sam_ops.original_op(name) is not dispatch.DISPATCHERS[name]
        assert getattr(sam_ops, name) is dispatch.DISPATCHERS[name]
    group_points = importlib.import_module('mmcv.ops.group_points')
    assert group_points.ball_query is sam_ops.ball_query
    assert group_points.knn is sam_ops.knn
    assert group_points.grouping_operation is sam_ops.grouping_operation
    points_sampler = importlib.import_module('mmcv.ops.points_sampler')
    assert points_sampler.furthest_point_sample is \
        sam_ops.furthest_point_sample
    assert points_sampler.furthest_point_sample_with_dist is \
        sam_ops.furthest_point_sample_with_dist


@pytest.mark.parametrize('module_name,names', [
    ('mmdet3d.models.layers.pointnet_modules.point_sa_module',
     ['gather_points']),
    ('mmdet3d.models.layers.pointnet_modules.point_fp_module',
     ['three_nn', 'three_interpolate']),
    ('mmdet3d.models.layers.pointnet_modules.stack_point_sa_module',
     ['ball_query', 'grouping_operation']),
    ('mmdet3d.models.dense_heads.groupfree3d_head', ['gather_points']),
    ('mmdet3d.models.dense_heads.vote_head', ['furthest_point_sample']),
    ('mmdet3d.models.roi_heads.mask_heads.primitive_head',
     ['furthest_point_sample']),
    ('mmdet3d.structures.bbox_3d.base_box3d',
     ['points_in_boxes_all', 'points_in_boxes_part']),
    ('mmdet3d.models.dense_heads.fcaf3d_head', ['nms3d', 'nms3d_normal']),
])
def test_mmdet3d_modules_bind_dispatchers(module_name, names):
    module = importlib.import_module(module_name)
    for name in names:
        assert getattr(module, name) is dispatch.DISPATCHERS[name], \
            f'{module_name}.{name}'


def test_modules_imported_before_and_after_install(reinstall):
    original = sam_ops.original_op('furthest_point_sample')
    # A module that bound mmcv's op (under an alias, and in a class body)
    # before the install ...
    probe = types.ModuleType('mmdet3d._sam_mtp_install_probe')
    probe.fps_alias = original

    class Sampler:
        fps = original

    Sampler.__module__ = probe.__name__
    probe.Sampler = Sampler
    sys.modules[probe.__name__] = probe
    try:
        sam_ops.uninstall_cpu_fallbacks()
        assert mmcv_ops.furthest_point_sample is original
        probe.fps_alias = original
        changed = sam_ops.install_cpu_fallbacks()
        assert probe.fps_alias is sam_ops.furthest_point_sample
        assert Sampler.fps is sam_ops.furthest_point_sample
        assert changed[f'{probe.__name__}.fps_alias'] == \
            'furthest_point_sample'
        # ... and code importing from mmcv.ops after it.
        namespace = {}
        exec('from mmcv.ops import knn, furthest_point_sample as fps',
             namespace)
        assert namespace['knn'] is sam_ops.knn
        assert namespace['fps'] is sam_ops.furthest_point_sample
        # Modules outside the scanned prefixes are left alone.
        outsider = types.ModuleType('unrelated_sam_mtp_probe')
        outsider.fps = original
        sys.modules[outsider.__name__] = outsider
        sam_ops.install_cpu_fallbacks()
        assert outsider.fps is original
    finally:
        sys.modules.pop(probe.__name__, None)
        sys.modules.pop('unrelated_sam_mtp_probe', None)


def test_install_is_idempotent_and_uninstall_restores(reinstall):
    vote_head = importlib.import_module('mmdet3d.models.dense_heads.vote_head')
    assert sam_ops.install_cpu_fallbacks() == {}
    restored = sam_ops.uninstall_cpu_fallbacks()
    assert 'mmcv.ops.furthest_point_sample' in restored
    assert not sam_ops.cpu_fallbacks_installed()
    for name in OPS:
        assert getattr(mmcv_ops, name) is sam_ops.original_op(name)
    assert vote_head.furthest_point_sample is \
        sam_ops.original_op('furthest_point_sample')
    assert sam_ops.install_cpu_fallbacks()
    assert vote_head.furthest_point_sample is sam_ops.furthest_point_sample
    assert sam_ops.cpu_fallbacks_installed()


def test_mmcv_ops_raise_on_cpu_without_the_fallbacks(reinstall):
    """The reason for this package: mmcv's FPS has no CPU kernel."""
    sam_ops.uninstall_cpu_fallbacks()
    with pytest.raises(Exception):
        mmcv_ops.furthest_point_sample(torch.rand(1, 16, 3), 4)


def test_device_routing(monkeypatch):
    calls = []

    def recording_original(*args):
        calls.append(args)
        return 'mmcv'

    monkeypatch.setitem(dispatch._ORIGINALS, 'knn', recording_original)
    xyz = torch.rand(1, 8, 3)
    assert sam_ops.knn(2, xyz).shape == (1, 2, 8)  # CPU -> PyTorch
    assert not calls
    # A device with mmcv kernels goes to the original with all arguments.
    monkeypatch.setattr(dispatch, 'MMCV_KERNEL_DEVICES', frozenset({'cpu'}))
    assert sam_ops.knn(2, xyz, None, True) == 'mmcv'
    assert calls == [(2, xyz, None, True)]
    # Without an mmcv kernel for an op, every device uses PyTorch.
    monkeypatch.delitem(dispatch._ORIGINALS, 'knn')
    assert sam_ops.knn(2, xyz).shape == (1, 2, 8)


@pytest.fixture
def cpu_as_kernel_device(monkeypatch):
    """The CPU plays a device mmcv can have kernels for (as CUDA does), with
    a fresh routing state; returns the warnings the dispatch logs."""
    monkeypatch.setattr(dispatch, 'MMCV_KERNEL_DEVICES', frozenset({'cpu'}))
    monkeypatch.setattr(dispatch, '_MISSING_KERNELS', {})
    monkeypatch.setattr(dispatch, '_WARNED', set())
    messages = []
    monkeypatch.setattr(dispatch, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    return messages


def _spy(monkeypatch, name, behaviour):
    calls = []

    def original(*args):
        calls.append(args)
        return behaviour(*args)

    monkeypatch.setitem(dispatch._ORIGINALS, name, original)
    return calls


def test_no_kernel_state_routes_to_pytorch(cpu_as_kernel_device,
                                           monkeypatch):
    """An mmcv without a kernel for (op, device) -- the state, not the op, is
    mocked -- sends that device's tensors to the PyTorch implementation."""
    calls = _spy(monkeypatch, 'knn', lambda *args: 'mmcv')
    three_nn_calls = _spy(monkeypatch, 'three_nn', lambda *args: 'mmcv')
    dispatch._MISSING_KERNELS[('knn', 'cpu')] = 'mmcv was built without ' \
        'CUDA kernels'
    xyz = torch.rand(2, 40, 3)
    centres = xyz[:, :7].contiguous()
    for _ in range(2):
        out = sam_ops.knn(4, xyz, centres)
        assert torch.equal(out, sam_ops.knn_torch(4, xyz, centres))
    assert not calls
    assert cpu_as_kernel_device == [
        'sam_mtp.ops: knn on cpu tensors uses the PyTorch implementation '
        '(mmcv was built without CUDA kernels)'
    ]  # once, not per call
    # Other ops on that device still go to mmcv.
    assert sam_ops.three_nn(xyz, centres) == 'mmcv' and three_nn_calls
    routing = dispatch.kernel_routing('cpu')
    assert routing['knn'] == 'pytorch' and routing['three_nn'] == 'mmcv'
    assert set(routing) == set(dispatch.DISPATCHERS)
    assert not dispatch.mmcv_kernel_available('knn', 'cpu')
    assert dispatch.mmcv_kernel_available('three_nn', 'cpu')


def test_dtypes_mmcv_kernels_lack_route_to_pytorch(cpu_as_kernel_device,
                                                  monkeypatch):
    """mmcv's kernels take float32/float64/float16 (FPS float32 only):
    bfloat16 under --amp goes to the PyTorch implementation."""
    knn_calls = _spy(monkeypatch, 'knn', lambda *args: 'mmcv')
    fps_calls = _spy(monkeypatch, 'furthest_point_sample',
                     lambda *args: 'mmcv')
    xyz = torch.rand(1, 30, 3)
    assert sam_ops.knn(3, xyz.half()) == 'mmcv' and len(knn_calls) == 1
    out = sam_ops.knn(3, xyz.bfloat16())
    assert len(knn_calls) == 1
    assert torch.equal(out, sam_ops.knn_torch(3, xyz.bfloat16()))
    assert sam_ops.furthest_point_sample(xyz, 5) == 'mmcv'
    assert torch.equal(
        sam_ops.furthest_point_sample(xyz.half(), 5),
        sam_ops.furthest_point_sample_torch(xyz.half(), 5))
    assert len(fps_calls) == 1
    assert cpu_as_kernel_device == [
        "sam_mtp.ops: knn on cpu tensors uses the PyTorch implementation "
        "(mmcv's kernel has no bfloat16)",
        'sam_mtp.ops: furthest_point_sample on cpu tensors uses the PyTorch '
        "implementation (mmcv's kernel has no float16)"
    ]
    assert dispatch.mmcv_kernel_available('knn', 'cpu')  # float32 still mmcv


def test_mmcv_build_without_cuda_marks_every_op_for_cuda(monkeypatch):
    monkeypatch.setattr(mmcv_ops, 'get_compiling_cuda_version',
                        lambda: 'not available')
    assert dispatch.mmcv_cuda_build() is None
    missing = dispatch._known_missing_kernels()
    assert set(missing) == {(name, 'cuda') for name in OPS}
    monkeypatch.setattr(mmcv_ops, 'get_compiling_cuda_version',
                        lambda: '13.0')
    assert dispatch.mmcv_cuda_build() == '13.0'
    assert dispatch._known_missing_kernels() == {}


def test_routing_of_this_mmcv_build():
    """This process's state agrees with the installed mmcv's build info."""
    routing = set(dispatch.kernel_routing('cuda').values())
    if dispatch.mmcv_cuda_build() is None:
        assert routing == {'pytorch'}
    else:
        assert routing == {'mmcv'}
    assert set(dispatch.kernel_routing('cpu').values()) == {'pytorch'}


def test_refusal_by_the_real_mmcv_is_remembered(cpu_as_kernel_device,
                                                monkeypatch):
    """mmcv's own "implementation for device cpu not found" (its ball_query
    has no CPU kernel) is caught once; later calls skip mmcv."""
    real = sam_ops.original_op('ball_query')
    calls = _spy(monkeypatch, 'ball_query', real)
    xyz = torch.rand(1, 60, 3)
    centres = xyz[:, :9].contiguous()
    expected = sam_ops.ball_query_torch(0., 0.3, 8, xyz, centres)
    assert torch.equal(sam_ops.ball_query(0., 0.3, 8, xyz, centres), expected)
    assert len(calls) == 1
    assert ('ball_query', 'cpu') in dispatch._MISSING_KERNELS
    assert torch.equal(sam_ops.ball_query(0., 0.3, 8, xyz, centres), expected)
    assert len(calls) == 1 and len(cpu_as_kernel_device) == 1
    assert 'ball_query on cpu tensors' in cpu_as_kernel_device[0]


def test_other_mmcv_errors_are_not_swallowed(cpu_as_kernel_device,
                                             monkeypatch):

    def out_of_memory(*args):
        raise RuntimeError('CUDA out of memory. Tried to allocate 2.00 GiB')

    _spy(monkeypatch, 'three_nn', out_of_memory)
    xyz = torch.rand(1, 20, 3)
    with pytest.raises(RuntimeError, match='out of memory'):
        sam_ops.three_nn(xyz, xyz)
    assert dispatch.mmcv_kernel_available('three_nn', 'cpu')
    assert not cpu_as_kernel_device


def test_mmcv_module_wrappers_run_on_cpu():
    """QueryAndGroup, GroupAll and PointsSampler look the ops up in their
    module globals, so they now run on the CPU."""
    torch.manual_seed(0)
    xyz = torch.rand(2, 64, 3)
    features = torch.rand(2, 5, 64, requires_grad=True)
    sampler = mmcv_ops.PointsSampler([8, 4], ['D-FPS', 'F-FPS'], [32, -1])
    index = sampler(xyz, features.detach())
    assert index.shape == (2, 12) and index.dtype == torch.int32
    assert (index[:, :8] < 32).all() and (index[:, 8:] >= 32).all()
    assert torch.equal(
        index[:, :8], sam_ops.furthest_point_sample(xyz[:, :32].contiguous(),
                                                    8))
    fs = mmcv_ops.PointsSampler([6], ['FS'], [-1])(xyz, features.detach())
    assert fs.shape == (2, 12)
    centres = sam_ops.gather_points(xyz.transpose(1, 2).contiguous(),
                                    index).transpose(1, 2).contiguous()
    grouper = mmcv_ops.QueryAndGroup(0.3, 8, return_grouped_idx=True)
    grouped, idx = grouper(xyz, centres, features)
    assert grouped.shape == (2, 3 + 5, 12, 8)
    assert torch.equal(idx, sam_ops.ball_query(0., 0.3, 8, xyz, centres))
    grouped.sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    knn_grouper = mmcv_ops.QueryAndGroup(None, 4)
    assert knn_grouper(xyz, centres).shape == (2, 3, 12, 4)
    assert mmcv_ops.GroupAll()(xyz, centres, features).shape == (2, 8, 1, 64)
