"""Promotion gates (governance.gates, medvl promote): policies, decisions, tags, alias and audit log."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from governance.audit import AuditLog, verify
from governance.gates import GateInputError, check_gate, load_policy, promote
from medvl.cli import main
from medvl.infer.model_ref import model_fingerprint
from tests.governance_support import log_benchx_run, register_model, results_doc, save_tiny_model

POLICY = {
    "min_metrics": [{"dataset": "phantom-2d", "task": "linear_probe", "metric": "auroc_macro", "min": 0.85,
                     "use": "ci_low"}],
    "max_subgroup_gap": [{"dataset": "phantom-2d", "task": "linear_probe", "metric": "auroc_macro",
                          "group": "sex", "max": 0.1}],
    "required_tasks": [{"dataset": "phantom-2d", "task": "retrieval"}],
}


def _write(path: Path, doc) -> Path:
    path.write_text(yaml.safe_dump(doc) if path.suffix == ".yaml" else json.dumps(doc))
    return path


@pytest.fixture()
def policy(tmp_path):
    return load_policy(_write(tmp_path / "policy.yaml", POLICY))


def test_passing_results_pass_and_the_default_fraction_is_the_largest(policy):
    decision = check_gate(policy, results_doc("m", "1"))
    assert decision.passed and decision.reasons == []  # the 0.1 fraction (ci_low 0.6) is not judged


def test_each_rule_refuses_with_a_reason_naming_it(policy):
    results = results_doc("m", "1", ci_low=0.8, sex=(0.95, 0.70),
                          failures=[{"dataset": "phantom-2d", "task": "retrieval", "fraction": 1.0, "seed": 1,
                                     "error": "out of memory"}],
                          missing=["phantom-2d/retrieval: fraction(s) 1, seed(s) 1"])
    decision = check_gate(policy, results)
    assert not decision.passed
    assert decision.reasons == [
        "partial results: they do not cover the whole protocol of suite 'phantom' (missing: phantom-2d/retrieval: "
        "fraction(s) 1, seed(s) 1)",
        "linear_probe auroc_macro on phantom-2d (fraction 1): ci_low 0.8000 < min 0.85",
        "linear_probe auroc_macro on phantom-2d (fraction 1): sex gap 0.2500 (F 0.9500 vs M 0.7000) > max 0.1",
        "required task retrieval on phantom-2d: 1 failed run(s), e.g. fraction 1.0 seed 1: out of memory",
    ]


def test_partial_or_unlabelled_results_never_pass(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("required_tasks:\n  - {dataset: phantom-2d, task: linear_probe}\n")
    only_task_rule = load_policy(path)
    assert check_gate(only_task_rule, results_doc("m", "1")).passed
    partial = check_gate(only_task_rule, results_doc("m", "1", missing=["phantom-2d/linear_probe: fraction(s) 0.1, "
                                                                          "seed(s) 1, 2", "phantom-3d/zero_shot: "
                                                                          "fraction(s) 1, seed(s) 0"]))  # fmt: skip
    assert not partial.passed and len(partial.reasons) == 1
    assert "seed(s) 1, 2" in partial.reasons[0] and "phantom-3d/zero_shot" in partial.reasons[0]
    older = results_doc("m", "1")
    del older["completeness"]
    assert "older benchx" in check_gate(only_task_rule, older).reasons[0]


def test_missing_and_nan_results_refuse(policy):
    results = results_doc("m", "1", mean=math.nan)
    results["results"] = [r for r in results["results"] if r["task"] != "retrieval" and not r["group"]]
    results["results"][0]["ci_low"] = None
    reasons = check_gate(policy, results).reasons
    assert reasons[0] == "linear_probe auroc_macro on phantom-2d (fraction 1): ci_low is missing or NaN (required >= 0.85)"
    assert "0 sex subgroup(s) evaluated; need 2 or more" in reasons[1]
    assert reasons[2] == "required task retrieval on phantom-2d: no result"


def test_beat_baseline_from_a_results_file(tmp_path):
    _write(tmp_path / "base.json", results_doc("m", "0", mean=0.93))
    policy = load_policy(_write(tmp_path / "p.yaml", {**POLICY, "min_metrics": [{**POLICY["min_metrics"][0],
                                                                                  "use": "mean", "min": 0.5}],
                                                      "beat_baseline": {"results": "base.json", "margin": 0.0}}))
    [reason] = check_gate(policy, results_doc("m", "1", mean=0.91)).reasons
    assert "mean 0.9100 does not beat the baseline 0.9300 by 0" in reason
    assert check_gate(policy, results_doc("m", "1", mean=0.95)).passed


@pytest.mark.parametrize("doc, message", [
    ({"min_metrics": [{"dataset": "d", "task": "t", "metric": "m"}]}, "min_metrics[1]: missing field 'min'"),
    ({"min_metrics": [{"dataset": "d", "task": "t", "metric": "m", "min": 0.5, "use": "median"}]},
     "min_metrics[1].use: 'median' is not one of mean, ci_low"),
    ({"max_subgroup_gap": [{"dataset": "d", "task": "t", "metric": "m", "group": "sex", "max": "big"}]},
     "max_subgroup_gap[1].max: expected a number"),
    ({}, "the policy has no rule"),
    ({"min_metric": []}, "unknown section(s) ['min_metric']"),
    ({"required_tasks": [{"dataset": "d", "task": "t"}], "beat_baseline": {"results": "x.json"}},
     "beat_baseline compares the min_metrics rules"),
])
def test_bad_policies_name_the_field(tmp_path, doc, message):
    with pytest.raises(GateInputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        load_policy(_write(tmp_path / "p.yaml", doc))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with three versions of 'cand' (v3 with its own weights) and their benchx runs."""
    root = tmp_path_factory.mktemp("gates")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    for seed in (1, 2, 3):
        register_model(uri, "cand", save_tiny_model(root / f"model{seed}", seed))
    return {"uri": uri, "root": root}


def test_promote_sets_alias_only_on_pass_and_records_tags_and_audit(store, tmp_path):
    uri, client = store["uri"], MlflowClient(store["uri"])
    policy = _write(tmp_path / "policy.yaml", POLICY)
    log = tmp_path / "audit.jsonl"
    good = _write(tmp_path / "good.json", results_doc("cand", "1"))
    decision = promote("models:/cand/1", policy, good, uri, log)
    assert decision.passed
    assert str(client.get_model_version_by_alias("cand", "champion").version) == "1"
    tags = client.get_model_version("cand", "1").tags
    assert tags["gate.passed"] == "true" and json.loads(tags["gate.reasons"]) == []
    assert tags["gate.policy_sha256"] == load_policy(policy).sha256

    bad = _write(tmp_path / "bad.json", results_doc("cand", "2", ci_low=0.5))
    refused = promote("models:/cand/2", policy, bad, uri, log)
    assert not refused.passed and "ci_low 0.5000 < min 0.85" in refused.reasons[0]
    assert str(client.get_model_version_by_alias("cand", "champion").version) == "1"  # never moved
    tags = client.get_model_version("cand", "2").tags
    assert tags["gate.passed"] == "false" and json.loads(tags["gate.reasons"]) == refused.reasons

    entries = list(AuditLog(log).entries())
    assert [(e["action"], e["subject"], e["details"]["passed"]) for e in entries] == [
        ("model.promote", "models:/cand/1", True), ("model.promote", "models:/cand/2", False)]
    assert entries[1]["details"]["reasons"] == refused.reasons and verify(log).ok


def test_champion_baseline_is_skipped_first_then_enforced(store, tmp_path):
    uri = store["uri"]
    rule = {**POLICY["min_metrics"][0], "use": "mean", "min": 0.5}
    policy = load_policy(_write(tmp_path / "p.yaml", {"min_metrics": [rule],
                                                      "beat_baseline": {"results": "models:/cand@best"}}))
    decision = check_gate(policy, results_doc("cand", "2"), uri)
    assert decision.passed and decision.notes == ["baseline models:/cand@best does not exist yet; baseline check skipped"]
    log_benchx_run(uri, results_doc("cand", "1", mean=0.95), tmp_path / "bench")
    MlflowClient(uri).set_registered_model_alias("cand", "best", "1")
    [reason] = check_gate(policy, results_doc("cand", "2", mean=0.91), uri).reasons
    assert "does not beat the baseline 0.9500" in reason


def test_results_of_another_model_are_refused_and_nothing_is_recorded(store, tmp_path, monkeypatch):
    uri, client = store["uri"], MlflowClient(store["uri"])
    monkeypatch.setenv("MEDVL_CACHE", str(tmp_path / "cache"))
    policy = _write(tmp_path / "policy.yaml", POLICY)
    log = tmp_path / "audit.jsonl"
    other = _write(tmp_path / "other.json", results_doc("cand", "1"))
    with pytest.raises(GateInputError, match="results are for cand version 1, not for cand version 3"):
        promote("models:/cand/3", policy, other, uri, log)
    by_print = results_doc("", "")
    by_print["model"]["fingerprint"] = model_fingerprint(store["root"] / "model2")
    with pytest.raises(GateInputError, match="is not that of cand version 3"):
        promote("models:/cand/3", policy, _write(tmp_path / "fp.json", by_print), uri, log)
    assert "gate.passed" not in client.get_model_version("cand", "3").tags and not log.exists()
    by_print["model"]["fingerprint"] = model_fingerprint(store["root"] / "model3")
    assert promote("models:/cand/3", policy, _write(tmp_path / "fp.json", by_print), uri, log, "staging").passed
    assert str(client.get_model_version_by_alias("cand", "staging").version) == "3"


def test_cli_exit_codes_and_one_line_on_bad_input(store, tmp_path, capsys):
    uri = store["uri"]
    policy = _write(tmp_path / "policy.yaml", POLICY)
    common = ["--tracking-uri", uri, "--audit-log", str(tmp_path / "audit.jsonl"), "--alias", "cli"]
    bad = _write(tmp_path / "bad.json", results_doc("cand", "2", sex=(0.9, 0.5)))
    assert main(["promote", "models:/cand/2", "--policy", str(policy), "--results", str(bad), *common]) == 1
    out = capsys.readouterr().out
    assert "REFUSED" in out and "sex gap 0.4000" in out
    good = _write(tmp_path / "good.json", results_doc("cand", "2"))
    assert main(["promote", "models:/cand/2", "--policy", str(policy), "--results", str(good), *common]) == 0
    assert "PASSED: models:/cand/2 now holds @cli" in capsys.readouterr().out
    missing = tmp_path / "missing.yaml"
    assert main(["promote", "models:/cand/2", "--policy", str(missing), "--results", str(good), *common]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("medvl promote")]
    assert err == [f"medvl promote: {missing}: cannot read the policy file (No such file or directory)"]
    assert verify(tmp_path / "audit.jsonl").entries == 2
