"""Pseudo-class groups of SAM regions: K-means on L2-normalised max-pooled region features (SAM-MTP §3.4).

Scale: the pretraining split has millions of regions. Memory stays bounded by fitting the centroids on a
uniform random sample of at most ``max_samples`` regions (taken in one streaming pass) and then assigning
every region of the split to its nearest centroid in a second streaming pass; the group counts ``n_i`` are
exact counts over all regions. The sample is chosen by random keys drawn per frame from
``(seed, scene, frame)``: it does not depend on the order in which frames are read or on sharding.

K-means is spherical (cosine): features and centroids are unit vectors, a region joins the centroid with the
largest dot product. Initialisation is k-means++ (``n_init`` restarts, the lowest objective wins); an empty
cluster is re-seeded with the sample point farthest from its centroid. Groups are numbered by decreasing size
on the sample, so group 0 is the most frequent pseudo-class. Results are deterministic for a given seed and
device (GPU matrix products may round differently from the CPU).
"""
import zlib
from typing import Optional, Tuple

import numpy as np
import torch


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def frame_sample_keys(seed: int, scene: str, frame_id: int, count: int) -> np.ndarray:
    """Random keys of one frame's regions for the order-independent sample."""
    rng = np.random.default_rng([int(seed), zlib.crc32(scene.encode()), int(frame_id), 0x6b6d])
    return rng.random(count)


class KeyedSample:
    """Keeps the ``capacity`` rows with the smallest keys seen so far (a uniform sample without replacement
    when keys are i.i.d. uniform). Memory: at most 2 * capacity rows."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f'sample capacity must be >= 1, got {capacity}')
        self.capacity = capacity
        self._rows, self._keys = [], []
        self._size = 0
        self.seen = 0

    def add(self, rows: np.ndarray, keys: np.ndarray) -> None:
        if len(rows) != len(keys):
            raise ValueError('rows and keys must have the same length')
        self.seen += len(rows)
        self._rows.append(np.asarray(rows))
        self._keys.append(np.asarray(keys, np.float64))
        self._size += len(rows)
        if self._size > 2 * self.capacity:
            self._shrink()

    def _shrink(self) -> None:
        rows, keys = np.concatenate(self._rows), np.concatenate(self._keys)
        if len(keys) > self.capacity:
            keep = np.argpartition(keys, self.capacity - 1)[:self.capacity]
            rows, keys = rows[keep], keys[keep]
        self._rows, self._keys, self._size = [rows], [keys], len(keys)

    def result(self) -> np.ndarray:
        """The sampled rows ordered by key (deterministic)."""
        if not self._rows:
            return np.zeros((0, 0), np.float32)
        self._shrink()
        order = np.argsort(self._keys[0], kind='stable')
        return self._rows[0][order]


def _max_similarity(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 65536) -> Tuple[torch.Tensor, torch.Tensor]:
    best, label = [], []
    for start in range(0, x.shape[0], chunk):
        sim = x[start:start + chunk] @ centroids.t()
        b, lab = sim.max(1)
        best.append(b)
        label.append(lab)
    return torch.cat(best), torch.cat(label)


def _kmeanspp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    first = int(torch.randint(n, (1, ), generator=gen))
    centroids = [x[first]]
    dist = (1 - x @ x[first]).clamp_min(0)
    for _ in range(1, k):
        prob = (dist ** 2).double().cpu()
        idx = int(torch.multinomial(prob, 1, generator=gen)) if prob.sum() > 0 else int(torch.randint(n, (1, ),
                                                                                                     generator=gen))
        centroids.append(x[idx])
        dist = torch.minimum(dist, (1 - x @ x[idx]).clamp_min(0))
    return torch.stack(centroids)


def _lloyd(x: torch.Tensor, centroids: torch.Tensor, max_iter: int, tol: float) -> Tuple[torch.Tensor, float]:
    k = centroids.shape[0]
    prev = None
    for _ in range(max_iter):
        sim, label = _max_similarity(x, centroids)
        objective = float((1 - sim).sum())
        sums = torch.zeros_like(centroids).index_add_(0, label, x)
        counts = torch.bincount(label, minlength=k)
        empty = torch.nonzero(counts == 0).squeeze(1)
        if empty.numel():
            # Re-seed empty clusters with the points farthest from their centroids (deterministic).
            far = torch.argsort(sim, stable=True)[:empty.numel()]
            sums[empty] = x[far]
        centroids = sums / sums.norm(dim=1, keepdim=True).clamp_min(1e-12)
        if prev is not None and empty.numel() == 0 and prev - objective <= tol * max(prev, 1e-12):
            break
        prev = objective
    sim, _ = _max_similarity(x, centroids)
    return centroids, float((1 - sim).sum())


def spherical_kmeans(features: np.ndarray, num_groups: int, seed: int = 0, n_init: int = 3, max_iter: int = 100,
                     tol: float = 1e-6, device: str = 'cpu') -> np.ndarray:
    """Centroids (K, D) float32 (unit norm, ordered by decreasing cluster size) of spherical K-means."""
    x = torch.from_numpy(l2_normalize(features)).to(device)
    if x.ndim != 2 or x.shape[0] < num_groups:
        raise ValueError(f'K-means with K={num_groups} needs at least K region features, got {x.shape[0]} '
                         f'(too few frames or regions; lower num_groups)')
    best, best_obj = None, np.inf
    for restart in range(n_init):
        gen = torch.Generator().manual_seed(int(seed) * 1000 + restart)
        centroids, objective = _lloyd(x, _kmeanspp(x, num_groups, gen), max_iter, tol)
        if objective < best_obj:
            best, best_obj = centroids, objective
    _, label = _max_similarity(x, best)
    sizes = torch.bincount(label, minlength=num_groups).cpu()
    order = torch.argsort(-sizes, stable=True)
    return best.cpu()[order].numpy().astype(np.float32)


def assign_groups(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Group id (int32) of each feature row: the centroid with the largest cosine similarity."""
    if features.shape[0] == 0:
        return np.zeros(0, np.int32)
    if features.shape[1] != centroids.shape[1]:
        raise ValueError(f'features have {features.shape[1]} channels but the centroids {centroids.shape[1]}')
    return np.argmax(l2_normalize(features) @ np.asarray(centroids, np.float32).T, axis=1).astype(np.int32)


def group_counts(labels: np.ndarray, num_groups: int, counts: Optional[np.ndarray] = None) -> np.ndarray:
    new = np.bincount(labels, minlength=num_groups).astype(np.int64)
    return new if counts is None else counts + new
