"""Findings of a model for image files, DICOM series and folders, without the review app (batch use next to a PACS).

  medvl predict runs/phantom-tiny/model chest.dcm ct-series/ --json > findings.jsonl
  medvl predict models:/medvl-demo@champion incoming/ --heatmaps heatmaps/

For each input: the out-of-distribution check against what the model was trained on (with its reasons), the
findings the model offers for that kind of input (radiograph or volume) with calibrated probabilities and
operating-point decisions, the most relevant slices of a volume and, with --heatmaps, a PNG of the top
finding's heatmap. A folder is searched recursively: each DICOM series is one input, each other image file
another. With --json, one JSON object per input and per line (fields: docs/predict.md). An input that cannot
be read gets one line on stderr and the rest go on; the exit status is then 2.
"""

from __future__ import annotations

import argparse
import json
import sys

HELP = "findings (calibrated, with an out-of-distribution check) for image files, DICOM series and folders"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", help="model folder, run folder or MLflow URI (models:/NAME@ALIAS, runs:/ID/model)"
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="DICOM file or folder, NIfTI, NRRD, PNG or JPEG"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per input and line on stdout")
    parser.add_argument(
        "--heatmaps", metavar="DIR", help="write a PNG of each input's top-finding heatmap here"
    )
    parser.add_argument("--tracking-uri", help="MLflow tracking URI for models:/ and runs:/ references")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm.auto import tqdm

    from medvl.infer.model_ref import ModelRefError, resolve_model
    from medvl.infer.predict import find_targets, predict_one, summary_line
    from medvl.infer.reading import Reader

    try:
        reader = Reader(resolve_model(args.model, tracking_uri=args.tracking_uri).model_dir)
    except (ModelRefError, ValueError, FileNotFoundError) as exc:
        print(f"medvl predict: {exc}", file=sys.stderr)
        return 2
    targets = [target for path in args.inputs for target in find_targets(path)]
    if not targets:
        print(f"medvl predict: {', '.join(args.inputs)}: no file to read", file=sys.stderr)
        return 2
    heatmaps = Path(args.heatmaps) if args.heatmaps else None
    failed = 0
    for target in tqdm(targets, desc="predict", unit="input", disable=len(targets) < 2 or None, leave=False):
        result = predict_one(reader, target, heatmaps)
        if result["status"] != "ok":
            failed += 1
            print(f"medvl predict: {summary_line(result)}", file=sys.stderr)
            if not args.json:
                continue
        print(json.dumps(result) if args.json else summary_line(result), flush=True)
    return 2 if failed else 0
