"""Gather the steps of ``benchmarks/gpu_suite.sh`` into one JSON file (the suite calls this last).

For each step NAME the suite leaves in WORK: ``NAME.cmd`` (the command, one argument a line), ``NAME.status``
(exit status, seconds, time limit), ``NAME.log`` and, when the step wrote one, ``NAME.json``. The output holds
the card, every step (command, status, seconds, its own JSON) and ``figures``: the numbers each issue asks
for, picked out of the steps' results. Exit status 1 when a step failed or ran out of time.

Run: python benchmarks/gpu_suite_collect.py WORK OUT.json --mode gpu|cpu-smoke --command "..."
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch

STEPS = ("input_pipeline", "pretrain", "slice_pooling", "volume_encoders")
NOT_MEASURED: dict[str, str] = {}  # figures an issue asks for that no step measures yet, with the reason
# The input-pipeline benchmark's summary lines: "pairs/s X (baseline Y, Zx)", "volumes/s X (baseline Y, Zx) at ..."
RATE_LINE = re.compile(r"^(pairs|volumes)/s ([\d.]+) \(baseline ([\d.]+), ([\d.]+)x\)")


def read_step(work: Path, name: str) -> dict[str, Any]:
    """One step's command, outcome, seconds and results (``missing`` when the suite did not run it)."""
    status_file = work / f"{name}.status"
    if not status_file.is_file():
        return {"status": "missing"}
    code, seconds, limit = (int(v) for v in status_file.read_text().split())
    log = (work / f"{name}.log").read_text(errors="replace").splitlines()
    result_file = work / f"{name}.json"
    step = {
        "command": (work / f"{name}.cmd").read_text().splitlines(),
        "status": "ok" if code == 0 else "timeout" if code in (124, 137) else "failed",
        "exit_status": code, "seconds": seconds, "timeout_s": limit,
        "result": json.loads(result_file.read_text()) if result_file.is_file() else None,
        "output_tail": log[-5:] if code == 0 else log[-30:],
    }  # fmt: skip
    return step


def figures(steps: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The headline numbers of the steps that produced results (a timed-out step may have written some)."""
    out: dict[str, Any] = {}
    if steps["input_pipeline"]["status"] == "ok":
        rates = [m.groups() for line in steps["input_pipeline"]["output_tail"] if (m := RATE_LINE.match(line))]
        out["input_pipeline"] = {
            what: {"per_s": float(x), "baseline_per_s": float(y), "speedup": float(z)} for what, x, y, z in rates
        }
    if result := steps["pretrain"].get("result"):
        keys = ("images_per_s", "mfu", "tflops_per_s", "gflop_per_image", "peak_memory_mb", "precision")
        out["pretrain"] = {
            "peak_tflops": result["peak_tflops"], "peak_source": result["peak_source"], "rounds": result["rounds_done"],
            "models": {model: {k: loops["medvl"][k] for k in keys} for model, loops in result["models"].items()},
        }  # fmt: skip
    if result := steps["slice_pooling"].get("result"):
        keys = ("peak_mb", "saved_mb", "volumes_per_s")
        out["slice_pooling"] = {
            str(row["slices"]): {mode: {k: row[mode][k] for k in keys} for mode in ("baseline", "chunked")}
            for row in result["rows"]
        }
    if result := steps["volume_encoders"].get("result"):
        out["volume_encoders"] = {str(row["slices"]): row["results"] for row in result["rows"]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path, help="the suite's working folder")
    parser.add_argument("out", type=Path, help="JSON file to write")
    parser.add_argument("--mode", choices=["gpu", "cpu-smoke"], required=True, help="how the suite ran")
    parser.add_argument("--command", default="", help="the suite's command line")
    args = parser.parse_args(argv)
    steps = {name: read_step(args.work, name) for name in STEPS}
    cuda = torch.cuda.is_available()
    doc = {
        "suite": "benchmarks/gpu_suite.sh", "mode": args.mode, "command": args.command,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "device_name": torch.cuda.get_device_name() if cuda else platform.processor() or platform.machine(),
        "torch": torch.__version__, "cuda": torch.version.cuda if cuda else None,
        "steps_seconds": sum(s.get("seconds", 0) for s in steps.values()),
        "steps": steps, "figures": figures(steps), "not_measured": NOT_MEASURED,
    }  # fmt: skip
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    bad = [name for name, s in steps.items() if s["status"] in ("failed", "timeout")]
    failed = f"; failed: {', '.join(bad)}" if bad else ""
    print(f"wrote {args.out} ({args.mode}, {doc['device_name']}, {doc['steps_seconds']} s of steps){failed}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
