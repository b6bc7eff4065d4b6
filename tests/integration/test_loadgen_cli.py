"""``aifactory bench run`` end to end: options → config → run → files and a summary table."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import typer
from typer.testing import CliRunner

from aifactory.cli.bench import register
from aifactory.loadgen.results import read_records
from tests.integration.test_loadgen_simfixture import running


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """aifactory (test harness)."""

    register(app)
    return app


def test_bench_run_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "res"
    with running("--ttft-ms", "5", "--itl-ms", "1", "--output-tokens", "8") as sim:
        result = CliRunner().invoke(
            _app(),
            [
                "bench",
                "run",
                "--target",
                sim.url,
                "--backend",
                "openai_chat",
                "--profile",
                "constant",
                "--rate",
                "20",
                "--requests",
                "10",
                "--warmup-requests",
                "2",
                "--output-tokens-mean",
                "8",
                "--slo-ttft-ms",
                "1000",
                "--workers",
                "1",
                "--out",
                str(out),
                "--no-progress",
            ],
        )
    assert result.exit_code == 0, result.output
    assert "ttft p50 ms" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema_version"] == 1 and summary["state"] == "completed"
    run = summary["runs"][0]
    assert run["requests_ok"] == 10 and run["warmup_excluded"] == 2
    assert run["goodput_requests"] == 10
    assert summary["config"]["backend"] == "openai_chat"
    assert read_records(out / "records.parquet").num_rows == 12
    assert (out / "summary.csv").read_text().startswith("run_index,")


def test_bench_run_reports_bad_target_and_bad_options(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(
        _app(), ["bench", "run", "--target", f"http://127.0.0.1:{port}", "--requests", "1"]
    )
    assert result.exit_code == 2
    assert "cannot reach" in result.output and "connection refused" in result.output
    result = CliRunner().invoke(
        _app(),
        ["bench", "run", "--target", "http://x:1", "--profile", "poisson", "--out", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert "needs 'rate'" in result.output


_CLI = (
    "import typer\n"
    "from aifactory.cli.bench import register\n"
    "app = typer.Typer()\n"
    "app.callback()(lambda: None)\n"
    "register(app)\n"
    "if __name__ == '__main__':\n"
    "    app()\n"
)


def test_ctrl_c_stops_gracefully_and_keeps_partial_results(tmp_path: Path) -> None:
    script = tmp_path / "cli.py"
    script.write_text(_CLI)
    out = tmp_path / "res"
    with running("--ttft-ms", "20", "--itl-ms", "2", "--output-tokens", "16") as sim:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(script),
                "bench",
                "run",
                "--target",
                sim.url,
                "--profile",
                "concurrency",
                "--concurrency",
                "4",
                "--duration",
                "60",
                "--workers",
                "2",
                "--out",
                str(out),
                "--no-progress",
            ],
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while not _loading(sim.url) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, output.decode()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["state"] == "cancelled"
    assert summary["runs"][0]["requests_ok"] > 0
    assert summary["runs"][0]["failures"].get("cancelled", 0) >= 1


def _loading(url: str) -> bool:
    """The simulator has served generations (its success counter moved)."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return any(
        line.startswith("vllm:request_success_total") and float(line.split()[-1]) > 5
        for line in text.splitlines()
    )
