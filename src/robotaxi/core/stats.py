"""Summary statistics shared by every package: the one `percentile` of the code base."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


def percentile(values: Sequence[float] | npt.NDArray[np.floating], q: float) -> float | None:
    """The `q`-th percentile (0–100) of `values`, or None when there are none.

    Linear interpolation between the two nearest ranks (numpy's default), so the 50th
    percentile of an even count is the mean of the middle two. Unrounded: callers that
    report it round it themselves.
    """
    if len(values) == 0:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))
