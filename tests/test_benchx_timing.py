"""benchx's plan with an estimate: timings kept per dataset, task and fraction, cached runs free, untimed ones
counted apart."""

from __future__ import annotations

from benchx.plan import Unit
from benchx.timing import KEEP, TimingLog, format_duration, plan_text


def test_timings_persist_and_give_the_median_of_the_last_runs(tmp_path):
    log = TimingLog(tmp_path)
    unit = Unit("phantom-2d", "segmentation", 1.0, 0)
    assert log.estimate(unit) is None
    for seconds in (9.0, 30.0, 10.0, 11.0, 12.0, 13.0):
        log.record(unit, seconds)
    again = TimingLog(tmp_path)
    assert len(again.times["phantom-2d/segmentation/1"]) == KEEP
    assert again.estimate(Unit("phantom-2d", "segmentation", 1.0, 2)) == 12.0  # any seed: 30, 10, 11, 12, 13
    (tmp_path / "timings.json").write_text("not json")
    assert TimingLog(tmp_path).estimate(unit) is None


def test_plan_lists_runs_cached_and_the_estimate(tmp_path):
    units = [Unit("a", "linear_probe", f, s) for f in (0.1, 1.0) for s in (0, 1)] + [Unit("b", "zero_shot", 1.0, 0)]
    log = TimingLog(tmp_path)
    first = plan_text("phantom", units, set(), log)
    assert first.splitlines()[0] == "benchx plan: suite phantom, 5 task runs on 2 dataset(s), 0 cached, 5 to run"
    assert "  a: linear_probe x4" in first and "  b: zero_shot x1" in first
    assert "estimate: none yet (5 runs never timed here" in first
    log.record(units[0], 60.0)
    log.record(units[2], 125.0)
    second = plan_text("phantom", units, {units[4]}, log)
    assert "1 cached, 4 to run" in second
    assert "estimate: about 6 min 10 s from earlier runs on this machine" in second  # 60 + 60 + 125 + 125
    assert "everything is cached" in plan_text("phantom", units, set(units), log)


def test_durations_read_naturally():
    assert [format_duration(s) for s in (4.4, 59.6, 61, 3725)] == ["4 s", "1 min 00 s", "1 min 01 s", "1 h 02 min"]
