"""numba's warning classes, as real classes: mmdet3d passes ``NumbaPerformanceWarning`` to
``warnings.filterwarnings`` at import. Nothing here can raise them (nothing is compiled)."""


class NumbaWarning(Warning):
    pass


class NumbaPerformanceWarning(NumbaWarning):
    pass


class NumbaDeprecationWarning(NumbaWarning, DeprecationWarning):
    pass


class NumbaPendingDeprecationWarning(NumbaWarning, PendingDeprecationWarning):
    pass
