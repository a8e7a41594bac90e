"""requirements.lock pins every dependency of pyproject.toml (extras included) within its range."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match:
            found[canonicalize_name(match[1])] = match[2]
    return found


def test_every_pyproject_dependency_is_pinned_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(d) for d in project["dependencies"]]
    wanted += [Requirement(d) for extra in project.get("optional-dependencies", {}).values() for d in extra]
    locked = pins()
    missing = sorted({r.name for r in wanted if canonicalize_name(r.name) not in locked})
    assert not missing, f"not pinned in requirements.lock: {missing}; regenerate it (see docs/pipelines.md)"
    outside = [f"{r} (locked {locked[canonicalize_name(r.name)]})" for r in wanted
               if not r.specifier.contains(locked[canonicalize_name(r.name)], prereleases=True)]
    assert not outside, f"locked versions outside pyproject ranges: {outside}"


def test_constraints_are_respected():
    locked = pins()
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            assert req.specifier.contains(locked[canonicalize_name(req.name)]), f"{req} vs requirements.lock"
