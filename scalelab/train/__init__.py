"""Training: optimizers, the per-batch step, devices, the training loop and the worker."""
