"""File writers of the synthetic data sets (parent folders made as needed)."""
import os
import os.path as osp
from typing import Sequence

import cv2
import numpy as np


def write_bytes(path: str, data: bytes) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def write_image(path: str, image: np.ndarray, params: Sequence[int] = ()) -> None:
    ok, buf = cv2.imencode(osp.splitext(path)[1], image, list(params))
    if not ok:
        raise RuntimeError(f'{path}: OpenCV could not encode the image')
    write_bytes(path, buf.tobytes())
