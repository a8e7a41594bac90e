"""``python -m medvl ...`` runs the ``medvl`` command (e.g. ``torchrun --nproc-per-node 8 -m medvl pretrain ...``)."""

from medvl.cli import main

raise SystemExit(main())
