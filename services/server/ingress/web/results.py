"""A benchmark's results from its folder: the HTML report and the files to download.

The client service writes ``summary.json``, ``summary.csv`` and ``records.parquet`` into
``<benchmarks dir>/<id>``; ``records.jsonl`` is made on request from the Parquet file
(:func:`aifactory.loadgen.results.export_records`) and the report is built the first time
it is asked for. Only folders under this stack's benchmarks directory are served: the
registry names the folder, and a name is not a licence to read any path.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from aifactory.loadgen.results import (
    CSV_FILE,
    JSONL_FILE,
    RECORDS_FILE,
    SUMMARY_FILE,
    export_records,
)
from aifactory.services.server.ingress.web.guard import REPORT_CSP
from aifactory.services.server.ingress.web.state import WebState
from aifactory.shared.messages.base import ID_PATTERN
from aifactory.shared.registry import BenchmarkRecord
from aifactory.shared.settings import Settings

DOWNLOADS = (SUMMARY_FILE, CSV_FILE, RECORDS_FILE, JSONL_FILE)
#: ``aifactory.report.REPORT_FILE``. The report package is imported when a report is first
#: asked for, not with the ingress: it loads matplotlib, seconds of start-up on a busy node.
REPORT_FILE = "report.html"
MEDIA = {
    SUMMARY_FILE: "application/json",
    CSV_FILE: "text/csv",
    RECORDS_FILE: "application/vnd.apache.parquet",
    JSONL_FILE: "application/x-ndjson",
}
BenchmarkId = Annotated[str, PathParam(pattern=ID_PATTERN)]


def local_results(settings: Settings, record: BenchmarkRecord) -> Path | None:
    """The results folder, if it is on this host under the benchmarks directory."""
    if not record.results_dir:
        return None
    root = settings.effective_benchmarks_dir.resolve()
    folder = Path(record.results_dir).resolve()
    if not folder.is_relative_to(root) or not folder.is_dir():
        return None
    return folder


def available(folder: Path) -> set[str]:
    present = {name for name in DOWNLOADS if (folder / name).is_file()}
    if RECORDS_FILE in present:
        present.add(JSONL_FILE)
    return present


def report_response(path: Path) -> FileResponse:
    """The report as a page of its own: inline styles and SVG, no script may run."""
    return FileResponse(
        path,
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": REPORT_CSP, "Cache-Control": "no-store"},
    )


def results_router(state: WebState) -> APIRouter:
    router = APIRouter(include_in_schema=False, dependencies=[Depends(state.guard.page)])

    async def folder_of(benchmark_id: str) -> Path:
        found = await state.benchmarks.get(benchmark_id)
        if found is None:
            raise HTTPException(404, f"no benchmark {benchmark_id!r}")
        folder = local_results(state.settings, found[0])
        if folder is None:
            raise HTTPException(404, f"benchmark {benchmark_id} has no results on this host")
        return folder

    @router.get("/benchmarks/{benchmark_id}/report", response_model=None)
    async def report(benchmark_id: BenchmarkId) -> FileResponse:
        folder = await folder_of(benchmark_id)
        target = folder / REPORT_FILE
        summary = folder / SUMMARY_FILE
        stale = not target.is_file() or (
            summary.is_file() and target.stat().st_mtime < summary.stat().st_mtime
        )
        if stale:
            from aifactory.report import ReportError, build_report

            try:
                await asyncio.to_thread(build_report, folder)
            except ReportError as exc:
                raise HTTPException(404, f"no report: {exc}") from exc
        return report_response(target)

    @router.get("/benchmarks/{benchmark_id}/files/{name}", response_model=None)
    async def download(benchmark_id: BenchmarkId, name: str) -> FileResponse:
        if name not in DOWNLOADS:
            raise HTTPException(404, f"no file {name!r}; files: {', '.join(DOWNLOADS)}")
        folder = await folder_of(benchmark_id)
        filename = f"{benchmark_id}-{name}"
        if name != JSONL_FILE:
            if not (folder / name).is_file():
                raise HTTPException(404, f"{name} is not in the results")
            return FileResponse(folder / name, media_type=MEDIA[name], filename=filename)
        records = folder / RECORDS_FILE
        if not records.is_file():
            raise HTTPException(404, f"{RECORDS_FILE} is not in the results")
        fd, tmp = tempfile.mkstemp(prefix="records-", suffix=".jsonl")
        os.close(fd)
        await asyncio.to_thread(export_records, records, Path(tmp), "jsonl")
        return FileResponse(
            tmp,
            media_type=MEDIA[name],
            filename=filename,
            background=BackgroundTask(os.unlink, tmp),
        )

    return router
