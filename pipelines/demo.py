"""Run medvl end to end on a synthetic phantom cohort (and the real chest X-rays when present), on CPU.

  medvl demo                       the full loop on CPU (aimed at well under 15 minutes), into ./medvl-demo
  medvl demo --quick               a smoke version with tiny sizes (1-2 minutes)
  medvl demo -o DIR --no-realdata  another folder; leave out $MEDVL_REALDATA/cxr_covid

Steps: synthesize a radiograph phantom cohort (DIR/phantom), then the pretrain-evaluate-register pipeline in DIR/pipeline:
ingest it (plus cxr_covid from the shared real-data bundle when $MEDVL_REALDATA or ../shared/data exists), check
it for identifiers, build the training cache, print a summary and write DIR/montage.png (sample images captioned by
their report's first line); pretrain a small model, register it as models:/medvl-demo/N, evaluate it and a
random-init baseline with benchx (comparison table), apply the promotion gate (@champion), write the model card,
then the same for volumes: CT phantoms (DIR/phantom-ct) and RadCLIP's two stages (2D encoder on slices, then the
slice adapter) in DIR/pipeline-ct, registered as models:/medvl-demo-ct/N and evaluated on CT volumes; and print
how to open the review app on the models. MLflow: $MLFLOW_TRACKING_URI, else sqlite in DIR/mlflow.db.
Re-running reuses what is done; a killed demo resumes where it stopped.

Exit status: 0 done (the radiograph model's gate passed; the CT model's verdict is printed), 1 a step failed or
the gate refused the radiograph model, 2 bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run the whole loop on a synthetic phantom cohort: data, pretraining, benchx, card, gate, registry"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``medvl demo`` arguments to ``parser``."""
    parser.add_argument("-o", "--out", type=Path, default=Path("medvl-demo"), help="output folder (default: medvl-demo)")
    parser.add_argument("--n-2d", type=int, default=None,
                        help="phantom radiographs to synthesize (default: 1200; 80 with --quick)")
    parser.add_argument("--n-3d", type=int, default=None,
                        help="phantom CTs for the volume model (default: 200; 24 with --quick; 0 skips it)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the cohort (default: 0)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke version: tiny cohort and model, few steps, one benchx seed, no real data")
    parser.add_argument("--no-realdata", action="store_true", help="skip the real chest X-rays even when present")


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit status."""
    from pipelines.demo_steps import run_demo

    return run_demo(args)
