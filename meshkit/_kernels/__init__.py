"""Private numba kernels. They sit behind the public validators and assume clean input:
contiguous int64 faces with in-range indices, finite float64 coordinates."""
