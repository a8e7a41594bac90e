"""Write the model card of a registered version (Markdown + HTML) and attach it to the version in MLflow.

  medvl card models:/demo/3 -o cards/demo-3
  medvl card models:/demo@candidate -o out --attribution gradcam1.png --attribution gradcam2.png

The card covers intended use, training data (manifest and split hashes, config), benchx metrics with
confidence intervals, subgroup performance, limitations and, when given, attribution examples. Both files go
to DIR and are logged as artifacts of the version's source run under model_card/; the model-version tag
'model_card' points at them (runs:/RUN_ID/model_card).

Exit status: 0 written, 2 bad input (not a models:/ URI, unknown version, no source run, missing image).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from governance.cards import CardError, write_model_card
from governance.lineage import LineageError

HELP = "write a registered version's model card (Markdown + HTML) and attach it in MLflow"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``medvl card`` arguments to ``parser``."""
    parser.add_argument("model_uri", metavar="MODEL_URI", help="models:/NAME/VERSION or models:/NAME@ALIAS")
    parser.add_argument("-o", "--out", type=Path, required=True, metavar="DIR", help="folder for the card files")
    parser.add_argument("--attribution", type=Path, action="append", default=[], metavar="IMAGE",
                        help="an attribution example image to include (repeatable)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite)")


def run(args: argparse.Namespace) -> int:
    """Run ``medvl card``; returns the exit status."""
    try:
        markdown, page = write_model_card(args.model_uri, args.out, args.tracking_uri,
                                          attributions=args.attribution)
    except (LineageError, CardError) as exc:
        print(f"medvl card: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {markdown} and {page}; attached to {args.model_uri} (tag model_card)")
    return 0
