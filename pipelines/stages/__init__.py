"""The stages of ``pretrain-evaluate-register``, one module per concern (data, model, governance)."""
