"""One BLAS thread for the fits in this package.

The optimisers here call BLAS on vectors of 3-5 numbers thousands of times. OpenBLAS wakes its
thread pool for those calls, and on a loaded machine each wake-up costs milliseconds: the
Chinchilla Approach 3 fit took 13 s with the default pool and 0.5 s with one thread (2 cores).
"""

from __future__ import annotations

import scipy.optimize  # noqa: F401  (loads scipy's own OpenBLAS before the controller looks)
from threadpoolctl import ThreadpoolController

_controller = ThreadpoolController()

# Usable as a decorator; entering it costs microseconds, so nesting is harmless.
one_blas_thread = _controller.wrap(limits=1, user_api="blas")
