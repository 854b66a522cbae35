"""Brute-force NumPy references of mmcv's 3D point ops for the tests.

Written as literal, loop-based transcriptions of what each CUDA kernel does
(thread layout and reductions included where they decide ties), in float32
like the kernels. Slow on purpose: only for tiny inputs.
"""
import math

import numpy as np

F32 = np.float32


# ------------------------------------------------------------------ sampling
def _fps_block_size(n):
    pow_2 = int(math.log(float(n)) / math.log(2.0))
    return max(min(1 << pow_2, 1024), 1)


def _fps_cuda_simulation(n, m, distance_row):
    """Simulate one CUDA block of mmcv's FPS kernel.

    ``distance_row(old)`` returns the float32 distances of all points to the
    last chosen point ``old``.
    """
    block = _fps_block_size(n)
    temp = np.full(n, 1e10, dtype=F32)
    out = [0]
    old = 0
    for _ in range(1, m):
        d_all = distance_row(old)
        dists = np.zeros(block, dtype=F32)
        dists_i = np.zeros(block, dtype=np.int64)
        for tid in range(block):
            best, besti = F32(-1), 0
            for k in range(tid, n, block):
                d2 = min(d_all[k], temp[k])
                temp[k] = d2
                if d2 > best:
                    best, besti = d2, k
            dists[tid], dists_i[tid] = best, besti
        thres = 1024
        while thres >= 2:
            half = thres // 2
            if block >= thres:
                for tid in range(half):
                    v1, v2 = dists[tid], dists[tid + half]
                    i1, i2 = dists_i[tid], dists_i[tid + half]
                    dists[tid] = max(v1, v2)
                    dists_i[tid] = i2 if v2 > v1 else i1
            thres //= 2
        old = int(dists_i[0])
        out.append(old)
    return np.asarray(out[:m], dtype=np.int32)


def furthest_point_sample(points, m):
    """(B, N, 3) float32 -> (B, m) int32, literal CUDA simulation."""
    points = np.asarray(points, dtype=F32)
    result = []
    for cloud in points:

        def row(old, cloud=cloud):
            d = cloud - cloud[old]
            return (d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] +
                    d[:, 2] * d[:, 2]).astype(F32)

        result.append(_fps_cuda_simulation(len(cloud), m, row))
    return np.stack(result)


def furthest_point_sample_with_dist(dist, m):
    """(B, N, N) float32 -> (B, m) int32, literal CUDA simulation."""
    dist = np.asarray(dist, dtype=F32)
    return np.stack([
        _fps_cuda_simulation(d.shape[0], m, lambda old, d=d: d[old])
        for d in dist
    ])


# ---------------------------------------------------------------- gathering
def gather_points(features, indices):
    b_, c_, _ = features.shape
    m_ = indices.shape[1]
    out = np.zeros((b_, c_, m_), dtype=features.dtype)
    for b in range(b_):
        for m in range(m_):
            out[b, :, m] = features[b, :, indices[b, m]]
    return out


def grouping_operation(features, indices):
    b_, c_, _ = features.shape
    _, p_, s_ = indices.shape
    out = np.zeros((b_, c_, p_, s_), dtype=features.dtype)
    for b in range(b_):
        for p in range(p_):
            for s in range(s_):
                out[b, :, p, s] = features[b, :, indices[b, p, s]]
    return out


def three_interpolate(features, indices, weight):
    b_, c_, _ = features.shape
    n_ = indices.shape[1]
    out = np.zeros((b_, c_, n_), dtype=features.dtype)
    for b in range(b_):
        for n in range(n_):
            for j in range(3):
                out[b, :,
                    n] += weight[b, n, j] * features[b, :, indices[b, n, j]]
    return out


# ---------------------------------------------------------------- neighbours
def _d2(a, b):
    d = (a - b).astype(F32)
    return F32(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])


def ball_query(min_radius, max_radius, nsample, xyz, center_xyz):
    """Literal port of the batched kernel."""
    max_r2 = F32(max_radius) * F32(max_radius)
    min_r2 = F32(min_radius) * F32(min_radius)
    b_, m_ = center_xyz.shape[:2]
    out = np.zeros((b_, m_, nsample), dtype=np.int32)
    for b in range(b_):
        for m in range(m_):
            cnt = 0
            for k in range(xyz.shape[1]):
                d2 = _d2(center_xyz[b, m], xyz[b, k])
                if d2 == 0 or (min_r2 <= d2 < max_r2):
                    if cnt == 0:
                        out[b, m, :] = k
                    out[b, m, cnt] = k
                    cnt += 1
                    if cnt >= nsample:
                        break
    return out


def stacked_ball_query(radius, nsample, xyz, xyz_cnt, centers, center_cnt):
    """Literal port of the stacked kernel (local indices, -1 when empty)."""
    r2 = F32(radius) * F32(radius)
    out = np.zeros((len(centers), nsample), dtype=np.int32)
    p_start = c_start = 0
    for n_pts, n_ctr in zip(xyz_cnt, center_cnt):
        for m in range(c_start, c_start + n_ctr):
            cnt = 0
            for k in range(n_pts):
                if _d2(centers[m], xyz[p_start + k]) < r2:
                    if cnt == 0:
                        out[m, :] = k
                    out[m, cnt] = k
                    cnt += 1
                    if cnt >= nsample:
                        break
            if cnt == 0:
                out[m, 0] = -1
        p_start += n_pts
        c_start += n_ctr
    return out


def knn(k, xyz, center_xyz):
    """(B, k, npoint): nearest first, ties by index, 1e10 sentinel -> 0."""
    b_, m_ = center_xyz.shape[:2]
    out = np.zeros((b_, m_, k), dtype=np.int32)
    for b in range(b_):
        for m in range(m_):
            cand = []
            for i in range(xyz.shape[1]):
                d2 = _d2(center_xyz[b, m], xyz[b, i])
                if d2 < 1e10:
                    cand.append((d2, i))
            cand.sort()
            for slot, (_, i) in enumerate(cand[:k]):
                out[b, m, slot] = i
    return out.transpose(0, 2, 1)


def three_nn(target, source):
    """Literal port of the kernel's best-three scan."""
    b_, n_ = target.shape[:2]
    dist2 = np.zeros((b_, n_, 3), dtype=target.dtype)
    idx = np.zeros((b_, n_, 3), dtype=np.int32)
    for b in range(b_):
        for n in range(n_):
            best = [1e40, 1e40, 1e40]
            besti = [0, 0, 0]
            for k in range(source.shape[1]):
                # The kernel compares with double precision bests.
                d = float(_d2(target[b, n], source[b, k]))
                if d < best[0]:
                    best = [d, best[0], best[1]]
                    besti = [k, besti[0], besti[1]]
                elif d < best[1]:
                    best = [best[0], d, best[1]]
                    besti = [besti[0], k, besti[1]]
                elif d < best[2]:
                    best[2], besti[2] = d, k
            with np.errstate(over='ignore'):
                dist2[b, n] = np.asarray(best).astype(target.dtype)
            idx[b, n] = besti
    return np.sqrt(dist2), idx


# --------------------------------------------------------------------- boxes
def point_in_box(point, box):
    """mmcv's check_pt_in_box3d in float32 (bottom-centre z)."""
    x, y, z = (F32(v) for v in point)
    cx, cy, cz, sx, sy, sz, rz = (F32(v) for v in box)
    cz = F32(cz + sz / F32(2))
    if abs(z - cz) > sz / F32(2):
        return False
    cos_a, sin_a = F32(np.cos(-rz)), F32(np.sin(-rz))
    local_x = (x - cx) * cos_a + (y - cy) * (-sin_a)
    local_y = (x - cx) * sin_a + (y - cy) * cos_a
    return bool(-sx / 2 < local_x < sx / 2 and -sy / 2 < local_y < sy / 2)


def points_in_boxes_all(points, boxes):
    b_, m_ = points.shape[:2]
    t_ = boxes.shape[1]
    out = np.zeros((b_, m_, t_), dtype=np.int32)
    for b in range(b_):
        for m in range(m_):
            for t in range(t_):
                out[b, m, t] = point_in_box(points[b, m], boxes[b, t])
    return out


def points_in_boxes_part(points, boxes):
    flags = points_in_boxes_all(points, boxes)
    out = np.full(flags.shape[:2], -1, dtype=np.int32)
    for b in range(flags.shape[0]):
        for m in range(flags.shape[1]):
            hits = np.nonzero(flags[b, m])[0]
            if len(hits):
                out[b, m] = hits[0]
    return out


def _rect(box):
    """Exact (float64) rotated BEV corners, counter-clockwise."""
    cx, cy, dx, dy, a = box[0], box[1], box[3], box[4], box[6]
    local = np.array([[-dx / 2, -dy / 2], [dx / 2, -dy / 2], [dx / 2, dy / 2],
                      [-dx / 2, dy / 2]])
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return local @ rot.T + np.array([cx, cy])


def _clip(subject, clip):
    """Sutherland-Hodgman clipping of a convex polygon by a convex CCW one."""
    output = list(subject)
    for i in range(len(clip)):
        a, b = clip[i], clip[(i + 1) % len(clip)]
        edge = b - a
        inp, output = output, []
        if not inp:
            break

        def side(p, a=a, edge=edge):
            return edge[0] * (p[1] - a[1]) - edge[1] * (p[0] - a[0])

        for j in range(len(inp)):
            cur, prev = inp[j], inp[j - 1]
            s_cur, s_prev = side(cur), side(prev)
            if s_cur >= 0:
                if s_prev < 0:
                    t = s_prev / (s_prev - s_cur)
                    output.append(prev + t * (cur - prev))
                output.append(cur)
            elif s_prev >= 0:
                t = s_prev / (s_prev - s_cur)
                output.append(prev + t * (cur - prev))
    return output


def _area(poly):
    if len(poly) < 3:
        return 0.0
    p = np.asarray(poly)
    return 0.5 * abs(
        np.dot(p[:, 0], np.roll(p[:, 1], -1)) -
        np.dot(p[:, 1], np.roll(p[:, 0], -1)))


def exact_bev_overlap(box_a, box_b):
    """Exact geometric BEV intersection area (independent algorithm)."""
    return _area(_clip(_rect(box_a), _rect(box_b)))


def kernel_bev_overlap(box_a, box_b):
    """Literal float32 port of mmcv's ``box_overlap`` kernel (edge
    intersections, corners within a 1 cm margin, angular sort, fan)."""
    a = [F32(v) for v in box_a]
    b = [F32(v) for v in box_b]

    def corners(box):
        cx, cy = box[0], box[1]
        hx, hy = box[3] / F32(2), box[4] / F32(2)
        raw = [(cx - hx, cy - hy), (cx + hx, cy - hy), (cx + hx, cy + hy),
               (cx - hx, cy + hy)]
        c, s = F32(np.cos(box[6])), F32(np.sin(box[6]))
        return [((x - cx) * c - (y - cy) * s + cx,
                 (x - cx) * s + (y - cy) * c + cy) for x, y in raw]

    def cross3(p1, p2, p0):
        return ((p1[0] - p0[0]) * (p2[1] - p0[1]) - (p2[0] - p0[0]) *
                (p1[1] - p0[1]))

    def inside(box, p):
        c, s = F32(np.cos(-box[6])), F32(np.sin(-box[6]))
        rx = (p[0] - box[0]) * c + (p[1] - box[1]) * (-s)
        ry = (p[0] - box[0]) * s + (p[1] - box[1]) * c
        return (abs(rx) < box[3] / F32(2) + F32(1e-2)
                and abs(ry) < box[4] / F32(2) + F32(1e-2))

    def intersect(p1, p0, q1, q0):
        if not (min(p0[0], p1[0]) <= max(q0[0], q1[0])
                and min(q0[0], q1[0]) <= max(p0[0], p1[0])
                and min(p0[1], p1[1]) <= max(q0[1], q1[1])
                and min(q0[1], q1[1]) <= max(p0[1], p1[1])):
            return None
        s1, s2 = cross3(q0, p1, p0), cross3(p1, q1, p0)
        s3, s4 = cross3(p0, q1, q0), cross3(q1, p1, q0)
        if not (s1 * s2 > 0 and s3 * s4 > 0):
            return None
        s5 = cross3(q1, p1, p0)
        if abs(s5 - s1) > F32(1e-8):
            return ((s5 * q0[0] - s1 * q1[0]) / (s5 - s1),
                    (s5 * q0[1] - s1 * q1[1]) / (s5 - s1))
        a0, b0 = p0[1] - p1[1], p1[0] - p0[0]
        c0 = p0[0] * p1[1] - p1[0] * p0[1]
        a1, b1 = q0[1] - q1[1], q1[0] - q0[0]
        c1 = q0[0] * q1[1] - q1[0] * q0[1]
        d = a0 * b1 - a1 * b0
        return ((b0 * c1 - b1 * c0) / d, (a1 * c0 - a0 * c1) / d)

    ca, cb = corners(a), corners(b)
    ca.append(ca[0])
    cb.append(cb[0])
    pts = []
    for i in range(4):
        for j in range(4):
            p = intersect(ca[i + 1], ca[i], cb[j + 1], cb[j])
            if p is not None:
                pts.append(p)
    for k in range(4):
        if inside(a, cb[k]):
            pts.append(cb[k])
        if inside(b, ca[k]):
            pts.append(ca[k])
    if not pts:
        return 0.0
    cx = F32(sum(p[0] for p in pts) / F32(len(pts)))
    cy = F32(sum(p[1] for p in pts) / F32(len(pts)))
    pts.sort(key=lambda p: np.arctan2(F32(p[1] - cy), F32(p[0] - cx)))
    area = F32(0)
    for k in range(len(pts) - 1):
        e1 = (pts[k][0] - pts[0][0], pts[k][1] - pts[0][1])
        e2 = (pts[k + 1][0] - pts[0][0], pts[k + 1][1] - pts[0][1])
        area += e1[0] * e2[1] - e1[1] * e2[0]
    return float(abs(area) / 2)


def kernel_bev_iou(box_a, box_b):
    inter = kernel_bev_overlap(box_a, box_b)
    union = F32(box_a[3]) * F32(box_a[4]) + F32(box_b[3]) * F32(box_b[4])
    return inter / max(float(union) - inter, 1e-8)


def nms(boxes, scores, threshold, iou_fn):
    """Greedy NMS by descending score with a pairwise IoU function."""
    order = np.argsort(-scores, kind='stable')
    keep = []
    for i in order:
        if all(iou_fn(boxes[k], boxes[i]) <= threshold for k in keep):
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def exact_bev_iou(box_a, box_b):
    inter = exact_bev_overlap(box_a, box_b)
    union = box_a[3] * box_a[4] + box_b[3] * box_b[4] - inter
    return inter / max(union, 1e-8)


def normal_bev_iou(a, b):
    w = max(
        min(a[0] + a[3] / 2, b[0] + b[3] / 2) -
        max(a[0] - a[3] / 2, b[0] - b[3] / 2), 0)
    h = max(
        min(a[1] + a[4] / 2, b[1] + b[4] / 2) -
        max(a[1] - a[4] / 2, b[1] - b[4] / 2), 0)
    inter = w * h
    return inter / max(a[3] * a[4] + b[3] * b[4] - inter, 1e-8)
