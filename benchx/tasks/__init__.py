"""The benchmark tasks; importing this package registers them (see :mod:`benchx.tasks.base`)."""

from benchx.tasks import classification, finetune, retrieval, segmentation, zero_shot  # noqa: F401
