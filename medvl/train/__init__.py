"""Contrastive pretraining: trainer, distributed set-up, checkpoints, sampling, schedules."""
