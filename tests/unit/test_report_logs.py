"""The experiment report's job-logs section: links to the saved logs, alerts, escaping."""

from __future__ import annotations

from pathlib import Path

from aifactory.report import build_experiment_report
from aifactory.report.logs import AlertRow, LogLink
from tests.unit.test_report import (
    HOSTILE,
    assert_self_contained,
    poisson_plan,
    run_records,
    write_folder,
)


def test_logs_are_linked_and_alerts_shown_escaped(tmp_path: Path) -> None:
    write_folder(tmp_path / "w", [poisson_plan()], run_records(0))
    links = [
        LogLink("svc1", "out", "logs/svc1.out.log", 1200, 98_000, "bus"),
        LogLink("svc1", "err", "logs/svc1.err.log", 3, 120, "bus"),
    ]
    alerts = [AlertRow("svc1", "err", 42, "cuda_oom", "error", HOSTILE)]
    html = build_experiment_report(
        [("w", tmp_path / "w")], tmp_path / "r.html", logs=links, alerts=alerts
    ).read_text()
    assert_self_contained(html)
    assert 'href="logs/svc1.out.log"' in html and 'href="logs/svc1.err.log"' in html
    assert "1,200" in html and "err line 42" in html and "cuda_oom" in html
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_no_alert_is_said_so(tmp_path: Path) -> None:
    write_folder(tmp_path / "w", [poisson_plan()], run_records(0))
    link = LogLink("svc1", "out", "logs/svc1.out.log", 1, 10, "bus")
    html = build_experiment_report(
        [("w", tmp_path / "w")], tmp_path / "r.html", logs=[link]
    ).read_text()
    assert "No failure pattern" in html and "Job logs" in html
    bare = build_experiment_report([("w", tmp_path / "w")], tmp_path / "b.html").read_text()
    assert "Job logs" not in bare
