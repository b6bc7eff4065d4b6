"""Experiments from the page: an example or an uploaded file, checked in full before anything
starts, then run by the experiment runner library as a task of the ingress, its steps
(deploy, ready, each workload, teardown, report) pushed to the page as they happen.

Runs started here are kept in memory (the last 50); their folders, under
``<state dir>/experiments``, stay on disk like those of ``aifactory experiment run``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from rich.console import Console
from starlette.datastructures import UploadFile

from aifactory.experiment.spec import ExperimentError, ExperimentSpec, load_experiment
from aifactory.loadgen.backends import backend_names
from aifactory.services.server.ingress.actions import check_deploy
from aifactory.services.server.ingress.web.render import page
from aifactory.services.server.ingress.web.results import REPORT_FILE, report_response
from aifactory.services.server.ingress.web.state import WebState
from aifactory.services.server.ingress.web.views import when
from aifactory.shared.bus import ensure_topology
from aifactory.shared.messages import new_id, utcnow
from aifactory.shared.recipes import RecipeError
from aifactory.shared.settings import REPO_ROOT

if TYPE_CHECKING:
    from aifactory.experiment.runner import Step

log = logging.getLogger(__name__)

MAX_RUNS = 50
MAX_UPLOAD = 256 * 1024
RunId = Annotated[str, PathParam(pattern=r"^[a-f0-9]{12}$")]
_EXAMPLE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\.ya?ml$")


class RunState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class ExperimentRun:
    run_id: str
    spec: ExperimentSpec
    source: str
    started: datetime = field(default_factory=utcnow)
    state: RunState = RunState.RUNNING
    steps: dict[str, dict[str, str]] = field(default_factory=dict)
    folder: Path | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = None

    def view(self) -> dict[str, Any]:
        running = [name for name, s in self.steps.items() if s["state"] == "running"]
        return {
            "run_id": self.run_id,
            "name": self.spec.name,
            "description": self.spec.description,
            "source": self.source,
            "recipe": self.spec.service.recipe,
            "workloads": [w.name for w in self.spec.workloads],
            "teardown": self.spec.teardown.value,
            "state": self.state.value,
            "terminal": self.state is not RunState.RUNNING,
            "started": when(self.started),
            "current": running[-1] if running else "",
            "folder": str(self.folder or ""),
            "error": self.error or "",
            "has_report": self.folder is not None and (self.folder / REPORT_FILE).is_file(),
            "steps": list(self.steps.values()),
        }


def examples_dir() -> Path:
    return REPO_ROOT / "examples"


def example_names() -> list[str]:
    folder = examples_dir()
    return sorted(p.name for p in folder.glob("*.y*ml") if _EXAMPLE.fullmatch(p.name))


def _step_view(step: Step) -> dict[str, str]:
    link, text = "", ""
    if step.benchmark_id:
        link, text = f"/benchmarks/{step.benchmark_id}", f"benchmark {step.benchmark_id}"
    elif step.service_id:
        link, text = f"/services/{step.service_id}", f"service {step.service_id}"
    return {
        "name": step.name,
        "state": step.state.value,
        "detail": step.detail,
        "link": link,
        "link_text": text,
    }


class Experiments:
    def __init__(self, state: WebState) -> None:
        self.state = state
        self.runs: OrderedDict[str, ExperimentRun] = OrderedDict()
        self.output_dir = state.settings.state_dir / "experiments"

    def check(self, text: str, label: str) -> ExperimentSpec:
        """The experiment, validated in full: the file, its recipe and overrides, each
        workload's backend (raises ``ExperimentError``)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "experiment.yaml"
            path.write_text(text)
            try:
                spec = load_experiment(path)
            except ExperimentError as exc:  # name the file the user gave, not ours
                raise ExperimentError(str(exc).replace(str(path), label)) from None
        spec = spec.model_copy(update={"output_dir": self.output_dir})
        try:
            check_deploy(self.state.settings, spec.service.recipe, spec.service.overrides)
        except RecipeError as exc:
            raise ExperimentError(f"{label}: service: {exc}") from exc
        known = backend_names()
        for i, workload in enumerate(spec.workloads):
            if workload.backend not in known:
                raise ExperimentError(
                    f"{label}: workloads[{i}].backend: unknown backend "
                    f"{workload.backend!r}; known: {', '.join(known)}"
                )
        return spec

    def start(self, spec: ExperimentSpec, text: str, source: str) -> ExperimentRun:
        run = ExperimentRun(run_id=new_id()[:12], spec=spec, source=source)
        self.runs[run.run_id] = run
        while len(self.runs) > MAX_RUNS:
            oldest = next(iter(self.runs.values()))
            if oldest.task is not None and not oldest.task.done():
                break
            self.runs.popitem(last=False)
        run.task = asyncio.create_task(self._run(run, text), name=f"experiment-{run.run_id}")
        return run

    def _post(self, run: ExperimentRun, name: str, data: object) -> None:
        self.state.hub.post(f"experiments/{run.run_id}", name, orjson.dumps(data).decode())

    def _on_step(self, run: ExperimentRun, step: Step) -> None:
        view = _step_view(step)
        run.steps[step.name] = view
        self._post(run, "step", view)

    async def _run(self, run: ExperimentRun, text: str) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        source = self.output_dir / f".{run.run_id}.yaml"
        source.write_text(text)
        # Imported here: the runner brings the report (matplotlib), slow to import.
        from aifactory.experiment.runner import ExperimentRunner

        try:
            topology = await ensure_topology(self.state.broker.connection.jetstream())
            runner = ExperimentRunner(
                run.spec,
                self.state.settings,
                self.state.broker,
                topology,
                Console(quiet=True),
                source=source,
                on_step=lambda step: self._on_step(run, step),
            )
            outcome = await runner.run()
            run.folder = outcome.folder
            run.error = outcome.error or (None if outcome.ok else "some workloads did not complete")
            run.state = RunState.COMPLETED if outcome.ok else RunState.FAILED
        except asyncio.CancelledError:
            run.state, run.error = RunState.CANCELLED, "aborted from the page"
        except Exception as exc:  # the page must say why, whatever it was
            log.exception("experiment %s crashed", run.run_id)
            run.state, run.error = RunState.FAILED, f"internal error: {exc!r}"
        finally:
            source.unlink(missing_ok=True)
            self._post(run, "run", run.view())

    async def stop(self) -> None:
        tasks = [r.task for r in self.runs.values() if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def experiments_router(state: WebState, experiments: Experiments) -> APIRouter:
    router = APIRouter(include_in_schema=False, dependencies=[Depends(state.guard.page)])
    actions = APIRouter(include_in_schema=False, dependencies=[Depends(state.guard.action)])

    def list_page(request: Request, error: str = "", status_code: int = 200) -> HTMLResponse:
        return page(
            request,
            "experiments.html",
            section="experiments",
            open_mode=state.open_mode,
            status_code=status_code,
            examples=example_names(),
            example="",
            error=error,
            output_dir=str(experiments.output_dir),
            runs=[r.view() for r in reversed(experiments.runs.values())],
        )

    @router.get("/experiments", response_class=HTMLResponse)
    async def experiments_page(request: Request) -> HTMLResponse:
        return list_page(request)

    @actions.post("/experiments", response_model=None)
    async def run_experiment(request: Request) -> Response:
        form = await request.form(max_files=1, max_fields=10)
        example, upload = form.get("example"), form.get("upload")
        try:
            if isinstance(upload, UploadFile) and upload.filename:
                data = await upload.read(MAX_UPLOAD + 1)
                if len(data) > MAX_UPLOAD:
                    raise ExperimentError(f"the file is over {MAX_UPLOAD // 1024} KiB")
                label = f"upload {upload.filename}"
                text = data.decode("utf-8", errors="replace")
            elif isinstance(example, str) and example in example_names():
                label, text = f"example {example}", (examples_dir() / example).read_text()
            else:
                raise ExperimentError("choose an example or upload an experiment file")
            spec = experiments.check(text, label)
        except ExperimentError as exc:
            return list_page(request, str(exc), status_code=422)
        run = experiments.start(spec, text, label)
        return RedirectResponse(f"/experiments/{run.run_id}", status_code=303)

    def find(run_id: str) -> ExperimentRun:
        run = experiments.runs.get(run_id)
        if run is None:
            raise HTTPException(404, f"no experiment run {run_id!r} on this ingress")
        return run

    @router.get("/experiments/{run_id}", response_class=HTMLResponse)
    async def experiment_page(request: Request, run_id: RunId) -> HTMLResponse:
        run = find(run_id)
        return page(
            request,
            "experiment.html",
            section="experiments",
            open_mode=state.open_mode,
            since=state.hub.position(f"experiments/{run_id}"),
            r=run.view(),
        )

    @actions.post("/experiments/{run_id}/abort", response_model=None)
    async def abort(run_id: RunId) -> Response:
        run = find(run_id)
        if run.task is not None and not run.task.done():
            run.task.cancel()
        return RedirectResponse(f"/experiments/{run_id}", status_code=303)

    @router.get("/experiments/{run_id}/report", response_model=None)
    async def report(run_id: RunId) -> FileResponse:
        run = find(run_id)
        if run.folder is None or not (run.folder / REPORT_FILE).is_file():
            raise HTTPException(404, "this run has no report (yet)")
        return report_response(run.folder / REPORT_FILE)

    router.include_router(actions)
    return router
