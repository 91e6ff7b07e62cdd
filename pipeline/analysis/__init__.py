"""Search-time analyses: Hessian eigenvalue, cell shape."""
