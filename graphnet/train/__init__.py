"""Training: data, optimizers, schedules and the training loop."""
