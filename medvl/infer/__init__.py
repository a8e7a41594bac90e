"""Inference on trained models: embeddings, retrieval, zero-shot classification, attribution."""
