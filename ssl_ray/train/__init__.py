"""Ray Train: the per-worker training loop and the TorchTrainer that runs it."""
