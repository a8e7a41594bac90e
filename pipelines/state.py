"""The state file of a pipeline work folder: which stages finished and what they produced.

``<work dir>/pipeline-state.json`` holds the pipeline name, a key that identifies this pipeline run (it tags the
registered model version, so a rerun finds it instead of registering again), the hash of the resolved config,
and per finished stage its outputs. Every update is written atomically (temp file, then rename), so a process
killed at any moment leaves either the previous or the new state.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

STATE_FILE = "pipeline-state.json"


class StateError(ValueError):
    """The work folder belongs to another pipeline or config; the message says what to do."""


class PipelineState:
    """Read and update a work folder's state file.

    Args:
        work_dir: the pipeline's work folder (created).
        pipeline: the pipeline's name.
        config_hash: hash of the resolved config; a folder started with another config is refused unless
            ``accept_new_config`` (the caller reruns stages from a given one).
    """

    def __init__(self, work_dir: Path, pipeline: str, config_hash: str, accept_new_config: bool = False) -> None:
        self.path = Path(work_dir) / STATE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file():
            self.data = json.loads(self.path.read_text())
            if self.data.get("pipeline") != pipeline:
                raise StateError(f"{self.path}: this work folder belongs to pipeline '{self.data.get('pipeline')}'; "
                                 f"use another --work-dir")
            if self.data.get("config_hash") != config_hash and not accept_new_config:
                raise StateError(f"{self.path}: this work folder was started with another config "
                                 f"({self.data.get('config_hash')}, now {config_hash}); use another --work-dir, "
                                 f"or --from STAGE to rerun from a stage with the new config")
            self.data["config_hash"] = config_hash
        else:
            key = f"{pipeline}-{uuid.uuid4().hex[:12]}"
            self.data = {"pipeline": pipeline, "key": key, "config_hash": config_hash, "stages": {}}
        self._write()

    @property
    def key(self) -> str:
        """The pipeline run's key (model-version tag ``pipeline.key``)."""
        return self.data["key"]

    def done(self, stage: str) -> bool:
        """Whether ``stage`` finished."""
        return stage in self.data["stages"]

    def outputs(self, stage: str) -> dict[str, Any]:
        """What a finished ``stage`` recorded (KeyError when it has not finished)."""
        return self.data["stages"][stage]

    def finish(self, stage: str, outputs: dict[str, Any]) -> None:
        """Record ``stage`` as finished with its outputs."""
        self.data["stages"][stage] = outputs
        self._write()

    def forget(self, stages: list[str]) -> None:
        """Mark ``stages`` as not finished (to run them again)."""
        for stage in stages:
            self.data["stages"].pop(stage, None)
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w") as fh:
            json.dump(self.data, fh, indent=2, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
