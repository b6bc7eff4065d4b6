"""Run one experiment through the services, exactly as a user would by hand.

deploy.requested → wait for service.ready → bench.requested per workload → wait for each →
collect results, the rendered script, versions and settings → one HTML report → tear down.
Everything goes over the bus, so the same runner works against the embedded stack on a
laptop and against a site NATS with the slurm executor.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from faststream.nats import NatsBroker
from rich.console import Console
from rich.live import Live

from aifactory.experiment.logs import SavedLogs, save_job_log, write_alerts
from aifactory.experiment.provenance import (
    image_provenance,
    public_settings,
    versions,
    write_json,
)
from aifactory.experiment.spec import ExperimentSpec, Teardown, WorkloadSpec, public_source
from aifactory.loadgen.remote.job import log_id
from aifactory.report import build_experiment_report
from aifactory.report.logs import AlertRow, LogLink
from aifactory.shared import subjects
from aifactory.shared.bus import Topology, publish
from aifactory.shared.bus.events import watch
from aifactory.shared.messages import (
    BenchCancel,
    BenchMetrics,
    BenchRequested,
    BenchTarget,
    DeployCancel,
    DeployRequested,
    LogStream,
    new_id,
)
from aifactory.shared.registry import BenchmarkRecord, KVRegistry, ServiceRecord
from aifactory.shared.results import WindowStats
from aifactory.shared.settings import REPO_ROOT, Settings
from aifactory.shared.states import BenchState, ServiceState


class ExperimentFailed(RuntimeError):
    """A step of the experiment did not succeed; the folder still holds what was collected."""


@dataclass
class Outcome:
    folder: Path
    service_id: str
    workloads: dict[str, BenchState] = field(default_factory=dict)
    error: str | None = None
    #: Log ids of the benchmarks' workers' jobs (``bench-<id>``), for those that had one.
    worker_jobs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and all(
            s is BenchState.COMPLETED for s in self.workloads.values()
        )


class ExperimentRunner:
    def __init__(
        self,
        spec: ExperimentSpec,
        settings: Settings,
        broker: NatsBroker,
        topology: Topology,
        console: Console,
        source: Path | None = None,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.broker = broker
        self.services = KVRegistry(topology.services, ServiceRecord)
        self.benchmarks = KVRegistry(topology.benchmarks, BenchmarkRecord)
        self.console = console
        self.source = source
        self._live_window: dict[str, WindowStats] = {}

    def make_folder(self) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        folder = self.spec.output_dir / f"{self.spec.name}-{stamp}"
        folder.mkdir(parents=True, exist_ok=False)
        return folder

    async def run(self) -> Outcome:
        folder = self.make_folder()
        self._write_provenance(folder)
        service_id = new_id()[:12]
        outcome = Outcome(folder=folder, service_id=service_id)
        sub = await watch(self.broker.connection, subjects.BENCH_METRICS, self._on_window)
        try:
            record = await self._deploy(service_id)
            self._collect_service(folder, record)
            for workload in self.spec.workloads:
                state = await self._benchmark(folder, service_id, workload, outcome)
                outcome.workloads[workload.name] = state
        except ExperimentFailed as exc:
            outcome.error = str(exc)
        finally:
            await sub.unsubscribe()
            teardown = self.spec.teardown is Teardown.ALWAYS or (
                self.spec.teardown is Teardown.ON_SUCCESS and outcome.ok
            )
            final = await self._teardown(service_id) if teardown else None
            found = await self.services.get(service_id)
            if found is not None:
                self._collect_service(folder, found[0])
            if final is not None:
                self.console.print(f"service {service_id}: {final.value}")
            saved = await self._collect_logs(folder, outcome, found[0] if found else None)
        self._report(folder, outcome, saved)
        return outcome

    # -- steps ----------------------------------------------------------------------------

    async def _deploy(self, service_id: str) -> ServiceRecord:
        svc = self.spec.service
        await publish(
            self.broker,
            subjects.DEPLOY_REQUESTED,
            DeployRequested(service_id=service_id, recipe=svc.recipe, overrides=svc.overrides),
        )
        started = time.monotonic()
        with Live(console=self.console, refresh_per_second=8, transient=True) as live:
            while time.monotonic() - started < self.spec.timeouts.ready_s:
                found = await self.services.get(service_id)
                record = found[0] if found else None
                elapsed = time.monotonic() - started
                if record is None:
                    live.update(f"deploy {svc.recipe}: waiting for the server… {elapsed:.0f}s")
                else:
                    job = f"job {record.job_id} {record.job_state}" if record.job_id else "no job"
                    live.update(
                        f"deploy {svc.recipe} [{service_id}]: [bold]{record.state.value}[/bold]"
                        f" ({job}) {elapsed:.0f}s"
                    )
                    if record.state is ServiceState.RUNNING:
                        urls = " ".join(e.reachable_url for e in record.endpoints)
                        self.console.print(
                            f"service {service_id} running after {elapsed:.0f}s: {urls}"
                        )
                        return record
                    if record.state.is_terminal:
                        raise ExperimentFailed(
                            f"service {service_id} {record.state.value}: {record.reason}"
                        )
                await asyncio.sleep(0.25)
        raise ExperimentFailed(
            f"service {service_id} not running after {self.spec.timeouts.ready_s:g}s"
        )

    async def _benchmark(
        self, folder: Path, service_id: str, workload: WorkloadSpec, outcome: Outcome
    ) -> BenchState:
        benchmark_id = new_id()[:12]
        if workload.worker_nodes is not None:
            outcome.worker_jobs.append(log_id(benchmark_id))
        await publish(
            self.broker,
            subjects.BENCH_REQUESTED,
            BenchRequested(
                benchmark_id=benchmark_id,
                target=BenchTarget(service_id=service_id),
                workload=self.spec.workload_body(workload),
            ),
        )
        started = time.monotonic()
        record: BenchmarkRecord | None = None
        with Live(console=self.console, refresh_per_second=4, transient=True) as live:
            while time.monotonic() - started < self.spec.timeouts.benchmark_s:
                found = await self.benchmarks.get(benchmark_id)
                record = found[0] if found else None
                live.update(self._bench_line(workload.name, benchmark_id, record, started))
                if record is not None and record.state.is_terminal:
                    break
                await asyncio.sleep(0.25)
            else:
                await publish(
                    self.broker, subjects.BENCH_CANCEL, BenchCancel(benchmark_id=benchmark_id)
                )
                raise ExperimentFailed(f"workload {workload.name} timed out")
        assert record is not None
        target = folder / "workloads" / workload.name
        target.mkdir(parents=True, exist_ok=True)
        if record.results_dir and Path(record.results_dir).is_dir():
            shutil.copytree(record.results_dir, target, dirs_exist_ok=True)
        write_json(target / "benchmark.json", record.model_dump(mode="json", exclude={"summary"}))
        if record.state is not BenchState.COMPLETED:
            self.console.print(
                f"[red]workload {workload.name}: {record.state.value}: {record.reason}[/red]"
            )
        else:
            self.console.print(f"workload {workload.name}: completed → {target}")
        return record.state

    def _bench_line(
        self, name: str, benchmark_id: str, record: BenchmarkRecord | None, started: float
    ) -> str:
        elapsed = time.monotonic() - started
        state = record.state.value if record else "requested"
        w = self._live_window.get(benchmark_id)
        if w is None:
            return f"workload {name} [{benchmark_id}]: {state} {elapsed:.0f}s"
        ttft = f"{w.ttft_p50_ms:.1f} ms" if w.ttft_p50_ms is not None else "-"
        return (
            f"workload {name} [{benchmark_id}]: {state} {w.label} "
            f"elapsed {w.elapsed_s:.0f}s sent {w.sent} done {w.completed} errors {w.errors} "
            f"rate {w.request_rate:.1f}/s TTFT p50 {ttft}"
        )

    async def _on_window(self, event: BenchMetrics) -> None:
        self._live_window[event.benchmark_id] = event.window

    async def _teardown(self, service_id: str) -> ServiceState | None:
        found = await self.services.get(service_id)
        if found is None or found[0].state.is_terminal:
            return found[0].state if found else None
        await publish(self.broker, subjects.DEPLOY_CANCEL, DeployCancel(service_id=service_id))
        deadline = time.monotonic() + self.spec.timeouts.teardown_s
        while time.monotonic() < deadline:
            found = await self.services.get(service_id)
            if found is not None and found[0].state.is_terminal:
                return found[0].state
            await asyncio.sleep(0.25)
        self.console.print(f"[yellow]service {service_id} did not end within the timeout[/yellow]")
        return None

    # -- files ----------------------------------------------------------------------------

    def _write_provenance(self, folder: Path) -> None:
        (folder / "experiment.yaml").write_text(
            public_source(self.source.read_text(), self.spec)
            if self.source
            else self.spec.model_dump_json(indent=2)
        )
        write_json(folder / "versions.json", versions(REPO_ROOT))
        write_json(folder / "settings.json", public_settings(self.settings))

    def _collect_service(self, folder: Path, record: ServiceRecord) -> None:
        target = folder / "service"
        target.mkdir(exist_ok=True)
        write_json(target / "service.json", record.model_dump(mode="json"))
        if record.spec is not None and record.spec.image is not None:
            write_json(target / "image.json", image_provenance(record.spec.image, self.settings))
        if record.script_path and Path(record.script_path).is_file():
            shutil.copy2(record.script_path, target / Path(record.script_path).name)

    async def _collect_logs(
        self, folder: Path, outcome: Outcome, record: ServiceRecord | None
    ) -> SavedLogs:
        """Every job's output from the logs stream (its files only as a fallback)."""
        js = self.broker.connection.jetstream()
        wait = self.spec.timeouts.logs_s
        ended = record is not None and record.state.is_terminal
        fallback = (
            {LogStream.OUT: record.output_path, LogStream.ERR: record.error_path}
            if record is not None
            else None
        )
        saved = await save_job_log(
            js, folder, outcome.service_id, wait_eof=wait if ended else 0, fallback=fallback
        )
        for job in outcome.worker_jobs:
            more = await save_job_log(js, folder, job, wait_eof=wait)
            saved.files += more.files
            saved.alerts += more.alerts
        write_alerts(folder, saved.alerts)
        for entry in saved.files:
            self.console.print(
                f"log {entry.job} {entry.stream.value}: {entry.path} ({entry.source})"
            )
        return saved

    def _report(self, folder: Path, outcome: Outcome, saved: SavedLogs) -> None:
        dirs = [
            (name, folder / "workloads" / name)
            for name in outcome.workloads
            if (folder / "workloads" / name / "summary.json").is_file()
        ]
        extra = {
            "experiment": self.spec.name,
            "description": self.spec.description,
            "recipe": self.spec.service.recipe,
            "overrides": self.spec.service.overrides,
            "service id": outcome.service_id,
            "executor": self.settings.executor,
            "outcome": "ok" if outcome.ok else (outcome.error or "some workloads failed"),
        }
        logs = [
            LogLink(
                job=f.job,
                stream=f.stream.value,
                href=f.path.relative_to(folder).as_posix(),
                records=f.records,
                bytes=f.bytes,
                source=f.source,
            )
            for f in saved.files
        ]
        alerts = [
            AlertRow(a.service_id, a.stream.value, a.line, a.pattern, a.severity.value, a.summary)
            for a in saved.alerts
        ]
        if dirs:
            build_experiment_report(
                dirs,
                folder / "report.html",
                title=self.spec.name,
                extra=extra,
                logs=logs,
                alerts=alerts,
            )
        write_json(
            folder / "outcome.json",
            {
                "ok": outcome.ok,
                "error": outcome.error,
                "service_id": outcome.service_id,
                "workloads": {k: v.value for k, v in outcome.workloads.items()},
            },
        )
