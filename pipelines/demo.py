"""Run medvl end to end on the embedded synthetic phantom cohort (and the real chest X-rays when present).

Steps: synthesize a small phantom cohort, ingest it into a manifest (plus ``cxr_covid`` from the shared real-data
bundle when ``MEDVL_REALDATA`` or ``../shared/data`` exists), build the training cache, and write a summary with a
montage of sample images captioned by the first line of their report.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run the end-to-end demo on a synthetic phantom cohort"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", type=Path, default=Path("medvl-demo"), help="output folder (default: medvl-demo)")
    parser.add_argument("--n-2d", type=int, default=400, help="2D phantom studies to synthesize (default: 400)")
    parser.add_argument("--n-3d", type=int, default=24, help="3D phantom CT studies to synthesize (default: 24)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--no-realdata", action="store_true", help="skip the real chest X-rays even when present")


def run(args: argparse.Namespace) -> int:
    from pipelines.demo_steps import run_demo

    return run_demo(args)
