"""Numba kernels behind the CPU point ops: a kd-tree, exact bucket FPS, and
k-nearest / first-in-ball queries on it.

Imported lazily by :mod:`.cpu_kernels` (``numba`` is optional for this
package). Every function is compiled on first use for the dtype it meets
(float32 or float64) and cached on disk, next to this file or, for read-only
installs, in numba's user-wide cache directory (``NUMBA_CACHE_DIR`` overrides
both). The code uses explicit loops and ``np.empty`` only: every other NumPy
function costs its own compilation (about a second each on a slow core) in
every fresh checkout.

Exactness. The kernels compute every point distance exactly as the CUDA
kernels and the PyTorch implementations do: coordinate-wise in the inputs'
dtype, ``(dx * dx + dy * dy) + dz * dz`` without fused multiply-add (numba
compiles without fast-math, so LLVM does not contract). The tree only decides
which points need not be looked at, by a lower bound of their distance to a
query: the distance to a node's bounding box, computed with the same
operations from the box's corner coordinates. Correctly rounded subtraction,
multiplication and addition are monotone, so that bound never exceeds the
computed distance of any point in the box, and a node is skipped only when
no point in it can change the result, ties included.

A tree is the tuple ``(perm, coords, box, node)``:

* ``perm`` (N,) int64: original index of each tree position, ascending
  within every leaf when built with ``sort_leaves``;
* ``coords`` (3, N): the coordinates in tree order;
* ``box`` (nodes, 6): tight bounding box ``(x_lo, y_lo, z_lo, x_hi, y_hi,
  z_hi)`` of each node's points;
* ``node`` (nodes, 4) int64: ``start, end`` (tree positions), ``child``
  (the first of two consecutive children, numbered after their parent; -1
  for a leaf) and ``min_index`` (lowest original index in the node).
"""
import numba
import numpy as np


def _jit(fn):
    """``njit`` with the GIL released (the callers spread work over threads)
    and an on-disk cache; without any writable cache location (read-only
    install and no writable home) the function is compiled per process."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # numba: "cannot cache function ...: no locator"
        return numba.njit(nogil=True)(fn)


# Fixed depth of the traversal stacks. The tree is split at the median, so
# its depth is at most log2(N) + 1 and a depth-first traversal holds at most
# one pending sibling per level.
_STACK_SIZE = 128
_START, _END, _CHILD, _MIN_INDEX = 0, 1, 2, 3


@_jit
def _gap(value, low, high):
    """Distance of ``value`` to the interval ``[low, high]``, in the
    coordinates' dtype (``value - value`` is a typed zero)."""
    if value < low:
        return low - value
    if value > high:
        return value - high
    return value - value


@_jit
def _box_bound(box, node, x, y, z):
    """Lower bound of the squared distance from (x, y, z) to any point of
    ``node``, with the same operations as the point distances."""
    gx = _gap(x, box[node, 0], box[node, 3])
    gy = _gap(y, box[node, 1], box[node, 4])
    gz = _gap(z, box[node, 2], box[node, 5])
    return gx * gx + gy * gy + gz * gz


@_jit
def _select(coords, perm, axis, low, high, kth):
    """Partially sort the points at ``low..high`` (inclusive) by coordinate
    ``axis`` so that entry ``kth`` is in sorted position, moving coordinates
    and indices together (Hoare quickselect on contiguous memory; equal keys
    are swapped across the pivot, so many duplicates still split evenly)."""
    keys = coords[axis]
    while high > low:
        mid = (low + high) >> 1
        a, b, c = keys[low], keys[mid], keys[high]
        if a > b:
            a, b = b, a
        if b > c:
            b = c
        if a > b:
            b = a
        pivot = b
        i, j = low, high
        while i <= j:
            while keys[i] < pivot:
                i += 1
            while keys[j] > pivot:
                j -= 1
            if i <= j:
                for d in range(3):
                    value = coords[d, i]
                    coords[d, i] = coords[d, j]
                    coords[d, j] = value
                index = perm[i]
                perm[i] = perm[j]
                perm[j] = index
                i += 1
                j -= 1
        if kth <= j:
            high = j
        elif kth >= i:
            low = i
        else:
            return


@_jit
def _sort_leaf(coords, perm, low, high):
    """Insertion sort of positions ``low:high`` by original index."""
    for i in range(low + 1, high):
        index = perm[i]
        x, y, z = coords[0, i], coords[1, i], coords[2, i]
        j = i
        while j > low and perm[j - 1] > index:
            perm[j] = perm[j - 1]
            for d in range(3):
                coords[d, j] = coords[d, j - 1]
            j -= 1
        perm[j] = index
        coords[0, j], coords[1, j], coords[2, j] = x, y, z


@_jit
def build_tree(xyz, leaf_size, sort_leaves):
    """A kd-tree (see the module docstring) over the (N >= 1, 3) points:
    nodes are split at the median of their cell's widest axis until they
    hold at most ``leaf_size`` points, or their cell has no extent (copies
    of one point)."""
    num = xyz.shape[0]
    coords = np.empty((3, num), dtype=xyz.dtype)
    perm = np.empty(num, dtype=np.int64)
    for i in range(num):
        perm[i] = i
        for d in range(3):
            coords[d, i] = xyz[i, d]
    # Leaves hold more than leaf_size // 2 points (or are cells of copies).
    max_nodes = 4 * (num // max(leaf_size // 2, 1)) + 3
    cell = np.empty((max_nodes, 6), dtype=xyz.dtype)
    node = np.empty((max_nodes, 4), dtype=np.int64)
    for d in range(3):
        cell[0, d] = cell[0, d + 3] = coords[d, 0]
        for i in range(1, num):
            cell[0, d] = min(cell[0, d], coords[d, i])
            cell[0, d + 3] = max(cell[0, d + 3], coords[d, i])
    node[0, _START], node[0, _END], node[0, _CHILD] = 0, num, -1
    num_nodes = 1
    stack = np.empty(_STACK_SIZE, dtype=np.int64)
    stack[0] = 0
    depth = 1
    while depth > 0:
        depth -= 1
        current = stack[depth]
        low, high = node[current, _START], node[current, _END]
        if high - low <= leaf_size:
            continue
        # The cell (not the points' box) picks the axis: no scan per node.
        axis, extent = 0, cell[current, 3] - cell[current, 0]
        for d in range(1, 3):
            if cell[current, d + 3] - cell[current, d] > extent:
                axis, extent = d, cell[current, d + 3] - cell[current, d]
        if not extent > 0:
            continue
        mid = (low + high) >> 1
        _select(coords, perm, axis, low, high - 1, mid)
        left = num_nodes
        num_nodes += 2
        node[current, _CHILD] = left
        for half in range(2):
            node[left + half, _START] = low if half == 0 else mid
            node[left + half, _END] = mid if half == 0 else high
            node[left + half, _CHILD] = -1
            for d in range(6):
                cell[left + half, d] = cell[current, d]
        cell[left, axis + 3] = coords[axis, mid]
        cell[left + 1, axis] = coords[axis, mid]
        stack[depth] = left + 1
        stack[depth + 1] = left
        depth += 2
    # Tight boxes: leaves from their points, parents from their children.
    box = np.empty((num_nodes, 6), dtype=xyz.dtype)
    for current in range(num_nodes - 1, -1, -1):
        first = node[current, _CHILD]
        if first >= 0:
            for d in range(3):
                box[current, d] = min(box[first, d], box[first + 1, d])
                box[current, d + 3] = max(box[first, d + 3],
                                          box[first + 1, d + 3])
            node[current, _MIN_INDEX] = min(node[first, _MIN_INDEX],
                                            node[first + 1, _MIN_INDEX])
            continue
        low, high = node[current, _START], node[current, _END]
        if sort_leaves:
            _sort_leaf(coords, perm, low, high)
        lowest = perm[low]
        for i in range(low + 1, high):
            lowest = min(lowest, perm[i])
        node[current, _MIN_INDEX] = lowest
        for d in range(3):
            box[current, d] = box[current, d + 3] = coords[d, low]
            for i in range(low + 1, high):
                box[current, d] = min(box[current, d], coords[d, i])
                box[current, d + 3] = max(box[current, d + 3], coords[d, i])
    return perm, coords, box, node[:num_nodes]


# ------------------------------------------------------------------- FPS
@_jit
def _leaves_in_order(node):
    """Leaf node ids in tree-position order (a depth-first walk), so that
    consecutive leaves are spatial neighbours."""
    num_leaves = 0
    for current in range(node.shape[0]):
        if node[current, _CHILD] < 0:
            num_leaves += 1
    leaves = np.empty(num_leaves, dtype=np.int64)
    stack = np.empty(_STACK_SIZE, dtype=np.int64)
    stack[0] = 0
    depth, count = 1, 0
    while depth > 0:
        depth -= 1
        current = stack[depth]
        first = node[current, _CHILD]
        if first < 0:
            leaves[count] = current
            count += 1
        else:
            stack[depth], stack[depth + 1] = first + 1, first
            depth += 2
    return leaves


@_jit
def _bucket_bounds(box, x, y, z, zero, first, stop, bound):
    """_box_bound of boxes ``first:stop`` (rows of a (6, n) array) into
    ``bound``, written out for the vectoriser (max() picks the same operand
    as _gap)."""
    for b in range(first, stop):
        gx = max(max(box[0, b] - x, x - box[3, b]), zero)
        gy = max(max(box[1, b] - y, y - box[4, b]), zero)
        gz = max(max(box[2, b] - z, z - box[5, b]), zero)
        bound[b] = gx * gx + gy * gy + gz * gz


@_jit
def furthest_point_sample(xyz, tree, num_samples, scan_rank, initial,
                          group_size, out):
    """Exact D-FPS of one (N >= 1, 3) cloud into ``out`` (``num_samples``
    int32), ``tree`` being its kd-tree.

    The choice at every step is the point with the largest running minimum
    squared distance to the chosen set, ties going to the lowest
    ``scan_rank`` (the CUDA kernel's reduction order), starting at index 0
    with every running distance at ``initial``: mmcv's rule exactly.

    The bucket method of QuickFPS (Han et al., 2023): the points sit in the
    kd-tree's leaves ("buckets"), each bucket keeps its best point, and after
    a new point is chosen only buckets whose box is closer to it than their
    best distance can change and are refreshed. Buckets are scanned as a
    flat list ("kd-line"), in groups of ``group_size`` consecutive (nearby)
    buckets with their own box and best, so that a far group costs one test.
    """
    perm, coords, box, node = tree
    num = perm.shape[0]
    dtype = coords.dtype
    leaves = _leaves_in_order(node)
    num_buckets = leaves.shape[0]
    num_groups = (num_buckets + group_size - 1) // group_size
    bucket_box = np.empty((6, num_buckets), dtype=dtype)
    group_box = np.empty((6, num_groups), dtype=dtype)
    bucket_range = np.empty((2, num_buckets), dtype=np.int64)
    best_dist = np.empty(num_buckets, dtype=dtype)
    best_rank = np.empty(num_buckets, dtype=np.int64)
    group_dist = np.empty(num_groups, dtype=dtype)
    group_rank = np.empty(num_groups, dtype=np.int64)
    rank = np.empty(num, dtype=np.int64)
    position = np.empty(num, dtype=np.int64)  # rank -> tree position
    running = np.empty(num, dtype=dtype)
    for i in range(num):
        rank[i] = scan_rank[perm[i]]
        position[rank[i]] = i
        running[i] = initial
    for b in range(num_buckets):
        leaf = leaves[b]
        for d in range(6):
            bucket_box[d, b] = box[leaf, d]
        low, high = node[leaf, _START], node[leaf, _END]
        bucket_range[0, b], bucket_range[1, b] = low, high
        best_dist[b] = initial
        best_rank[b] = rank[low]
        for i in range(low + 1, high):
            best_rank[b] = min(best_rank[b], rank[i])
    for g in range(num_groups):
        first = g * group_size
        stop = min(first + group_size, num_buckets)
        group_dist[g] = initial
        group_rank[g] = best_rank[first]
        for d in range(3):
            group_box[d, g] = bucket_box[d, first]
            group_box[d + 3, g] = bucket_box[d + 3, first]
        for b in range(first + 1, stop):
            group_rank[g] = min(group_rank[g], best_rank[b])
            for d in range(3):
                group_box[d, g] = min(group_box[d, g], bucket_box[d, b])
                group_box[d + 3, g] = max(group_box[d + 3, g],
                                          bucket_box[d + 3, b])
    px, py, pz = coords[0], coords[1], coords[2]
    group_bound = np.empty(num_groups, dtype=dtype)
    bound = np.empty(num_buckets, dtype=dtype)
    zero = initial - initial
    out[0] = 0
    last = 0
    for step in range(1, num_samples):
        x, y, z = xyz[last, 0], xyz[last, 1], xyz[last, 2]
        _bucket_bounds(group_box, x, y, z, zero, 0, num_groups, group_bound)
        top_dist, top_rank = -initial, num
        for g in range(num_groups):
            # No point of the group can get closer than its best.
            if group_bound[g] < group_dist[g]:
                first = g * group_size
                stop = min(first + group_size, num_buckets)
                _bucket_bounds(bucket_box, x, y, z, zero, first, stop, bound)
                peak_dist, peak_rank = -initial, num
                for b in range(first, stop):
                    if bound[b] < best_dist[b]:
                        low, high = bucket_range[0, b], bucket_range[1, b]
                        peak = -initial
                        for i in range(low, high):
                            dx = px[i] - x
                            dy = py[i] - y
                            dz = pz[i] - z
                            dist = min(running[i], dx * dx + dy * dy + dz * dz)
                            running[i] = dist
                            peak = max(peak, dist)
                        bucket_rank = num
                        for i in range(low, high):
                            if running[i] == peak:
                                bucket_rank = min(bucket_rank, rank[i])
                        best_dist[b], best_rank[b] = peak, bucket_rank
                    if best_dist[b] > peak_dist or (best_dist[b] == peak_dist
                                                    and best_rank[b]
                                                    < peak_rank):
                        peak_dist, peak_rank = best_dist[b], best_rank[b]
                group_dist[g], group_rank[g] = peak_dist, peak_rank
            if group_dist[g] > top_dist or (group_dist[g] == top_dist
                                            and group_rank[g] < top_rank):
                top_dist, top_rank = group_dist[g], group_rank[g]
        last = perm[position[top_rank]]
        out[step] = last


# ------------------------------------------------------------- neighbours
@_jit
def nearest_k(tree, queries, begin, stop, k, limit, out_index, out_dist2,
              write_dist2):
    """The ``k`` nearest tree points of ``queries[begin:stop]``, ascending by
    (squared distance, index), only points with distance ``< limit``
    (float64 comparison, the kernels' sentinel).

    Writes ``out_index[q, :found]`` (and ``out_dist2`` if ``write_dist2``);
    the other slots are left as they are.
    """
    perm, coords, box, node = tree
    px, py, pz = coords[0], coords[1], coords[2]
    best_dist = np.empty(k, dtype=coords.dtype)
    best_index = np.empty(k, dtype=np.int64)
    stack = np.empty(_STACK_SIZE, dtype=np.int64)
    stack_bound = np.empty(_STACK_SIZE, dtype=coords.dtype)
    for q in range(begin, stop):
        x, y, z = queries[q, 0], queries[q, 1], queries[q, 2]
        count = 0
        stack[0] = 0
        stack_bound[0] = _box_bound(box, 0, x, y, z)
        depth = 1
        while depth > 0:
            depth -= 1
            current = stack[depth]
            bound = stack_bound[depth]
            # Equal distances may still enter by a lower index: prune only
            # strictly farther nodes.
            if not bound < limit or (count == k
                                     and bound > best_dist[k - 1]):
                continue
            first = node[current, _CHILD]
            if first >= 0:
                bound_a = _box_bound(box, first, x, y, z)
                bound_b = _box_bound(box, first + 1, x, y, z)
                # The nearer child is popped first.
                near, far = first, first + 1
                if bound_b < bound_a:
                    near, far = first + 1, first
                    bound_a, bound_b = bound_b, bound_a
                stack[depth], stack_bound[depth] = far, bound_b
                stack[depth + 1], stack_bound[depth + 1] = near, bound_a
                depth += 2
                continue
            for i in range(node[current, _START], node[current, _END]):
                dx = x - px[i]
                dy = y - py[i]
                dz = z - pz[i]
                dist = dx * dx + dy * dy + dz * dz
                if not dist < limit:
                    continue
                index = perm[i]
                if count == k:
                    if dist > best_dist[k - 1] or (
                            dist == best_dist[k - 1]
                            and index > best_index[k - 1]):
                        continue
                    slot = k - 1
                else:
                    slot = count
                    count += 1
                while slot > 0 and (best_dist[slot - 1] > dist or
                                    (best_dist[slot - 1] == dist
                                     and best_index[slot - 1] > index)):
                    best_dist[slot] = best_dist[slot - 1]
                    best_index[slot] = best_index[slot - 1]
                    slot -= 1
                best_dist[slot] = dist
                best_index[slot] = index
        for j in range(count):
            out_index[q, j] = best_index[j]
            if write_dist2:
                out_dist2[q, j] = best_dist[j]


@_jit
def first_in_ball(tree, queries, begin, stop, sample_num, min_radius2,
                  max_radius2, zero_distance_counts, empty_marker, out):
    """mmcv's ball query of ``queries[begin:stop]`` into ``out`` (int32,
    pre-filled with zeros); ``tree`` built with ``sort_leaves``.

    A point is in the ball when ``min_radius2 <= d2 < max_radius2``, or when
    ``d2 == 0`` and ``zero_distance_counts`` (the batched kernel). The first
    ``sample_num`` such points in index order fill the row, free slots repeat
    the first one; a query without points gets ``empty_marker`` in slot 0
    (0 batched, -1 stacked).
    """
    perm, coords, box, node = tree
    px, py, pz = coords[0], coords[1], coords[2]
    found = np.empty(sample_num, dtype=np.int64)
    stack = np.empty(_STACK_SIZE, dtype=np.int64)
    for q in range(begin, stop):
        x, y, z = queries[q, 0], queries[q, 1], queries[q, 2]
        count = 0
        stack[0] = 0
        depth = 1
        while depth > 0:
            depth -= 1
            current = stack[depth]
            # Full of lower indices already, or too far for every point.
            if count == sample_num and \
                    node[current, _MIN_INDEX] > found[count - 1]:
                continue
            bound = _box_bound(box, current, x, y, z)
            if not bound < max_radius2 and not (zero_distance_counts
                                                and bound == 0):
                continue
            first = node[current, _CHILD]
            if first >= 0:
                # The child holding the lower index is popped first.
                if node[first, _MIN_INDEX] <= node[first + 1, _MIN_INDEX]:
                    stack[depth], stack[depth + 1] = first + 1, first
                else:
                    stack[depth], stack[depth + 1] = first, first + 1
                depth += 2
                continue
            for i in range(node[current, _START], node[current, _END]):
                index = perm[i]  # ascending within a leaf
                if count == sample_num and index > found[count - 1]:
                    break
                dx = x - px[i]
                dy = y - py[i]
                dz = z - pz[i]
                dist = dx * dx + dy * dy + dz * dz
                if not ((dist >= min_radius2 and dist < max_radius2) or
                        (zero_distance_counts and dist == 0)):
                    continue
                if count == sample_num:
                    slot = count - 1
                else:
                    slot = count
                    count += 1
                while slot > 0 and found[slot - 1] > index:
                    found[slot] = found[slot - 1]
                    slot -= 1
                found[slot] = index
        if count == 0:
            out[q, 0] = empty_marker
            continue
        for j in range(count):
            out[q, j] = found[j]
        for j in range(count, sample_num):
            out[q, j] = found[0]
