"""The benchmark tasks: :data:`TASK_FUNCTIONS` maps each task a card may name (:data:`benchx.cards.TASKS`) to its
function ``(context, fraction, seed) -> TaskOutcome``."""

from __future__ import annotations

from benchx.cards import TASKS
from benchx.tasks.base import TaskFn
from benchx.tasks.classification import linear_probe
from benchx.tasks.finetune import finetune_frozen, finetune_full
from benchx.tasks.retrieval import retrieval
from benchx.tasks.segmentation import segmentation
from benchx.tasks.zero_shot import zero_shot

TASK_FUNCTIONS: dict[str, TaskFn] = dict(
    zip(TASKS, (linear_probe, finetune_frozen, finetune_full, zero_shot, retrieval, segmentation), strict=True)
)
