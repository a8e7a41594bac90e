"""End-to-end flows of medvl: ``pipelines run pretrain-evaluate-register`` (restartable stages), ``medvl demo``,
and cluster launch templates (``pipelines/cluster/``). See docs/pipelines.md and docs/cluster.md."""
