"""The label-file builders of :mod:`projects.sam_mtp.testing`, under the name the tests import them by."""
from projects.sam_mtp.testing import make_collated_batch, make_frame_arrays, write_label_split  # noqa: F401
