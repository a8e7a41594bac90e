"""benchx: a standardized, reproducible evaluation suite for medvl models, tracked in MLflow.

Entry points: :func:`benchx.api.evaluate` (Python), ``benchx`` (command line, :mod:`benchx.cli`). Dataset cards
(:mod:`benchx.cards`), suites (:mod:`benchx.suites`), model adapters (:mod:`benchx.models`), tasks
(:mod:`benchx.tasks`), statistics (:mod:`benchx.stats`), results (:mod:`benchx.results`). See ``docs/benchx.md``.
"""
