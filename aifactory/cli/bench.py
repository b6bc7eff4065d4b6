"""``aifactory bench``: drive benchmark load against a URL and write the results.

``bench run`` builds a :class:`BenchConfig` from its options (every check happens there, so
the CLI and a ``bench.requested`` workload are validated the same way), runs
:func:`run_benchmark`, prints a summary table and writes ``summary.json``, ``summary.csv``
and ``records.parquet`` under ``--out``. Ctrl-C stops the load gracefully: partial results are
still written, marked ``cancelled``. ``bench_app`` is module-level so that other commands
(``bench report``) can be added to the same group.
"""

from __future__ import annotations

import asyncio
import re
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import uvloop
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from aifactory.cli.common import settings
from aifactory.cli.targets import TargetNotFound, resolve_target
from aifactory.cli.vector_options import PANEL as _VEC
from aifactory.cli.vector_options import operation_rows, vector_settings
from aifactory.loadgen import (
    BenchConfig,
    BenchResult,
    DatasetFormat,
    LoadgenError,
    ProfileKind,
    run_benchmark,
    write_results,
)
from aifactory.loadgen.backends import RequestKind, backend_class
from aifactory.loadgen.results import RECORDS_FILE, export_records
from aifactory.report import ReportError
from aifactory.report.cli import report_command
from aifactory.shared.messages.base import ID_PATTERN
from aifactory.shared.plugins import ExtensionError
from aifactory.shared.results import RunSummary
from aifactory.shared.states import BenchState
from aifactory.shared.vectors import Distance, VectorDistribution, VectorMode

bench_app = typer.Typer(
    help="Benchmark an inference endpoint or a vector database.", no_args_is_help=True
)

_LOAD = "Load profile"
_STOP = "Stop and warmup"
_DATA = "Workload"
_SLO = "Service-level objectives"
#: Exit codes: bad options / unreachable target, and interrupted (as a shell would report).
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_DURATION_S = 60.0


@bench_app.command("report")
def report_cmd(
    target: Annotated[
        str, typer.Argument(help="A benchmark id (from the client service) or a results folder.")
    ],
    out: Annotated[Path | None, typer.Option(help="Where to write report.html.")] = None,
) -> None:
    """Write the self-contained HTML report (plus the JSON and CSV already beside it)."""
    console = Console(stderr=True)
    path = Path(target)
    if not path.exists():
        candidate = settings().effective_benchmarks_dir / target
        if not re.fullmatch(ID_PATTERN, target) or not candidate.is_dir():
            console.print(
                f"[red]error:[/red] {target!r} is neither a results folder nor a "
                f"benchmark id with results under {candidate.parent}"
            )
            raise typer.Exit(EXIT_USAGE)
        path = candidate
    try:
        written = report_command(path, out)
    except ReportError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
    typer.echo(str(written))


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command group to the main typer app."""
    app.add_typer(bench_app, name="bench")


def _dist(mean: int, std: float, lo: int | None, hi: int | None) -> dict[str, Any]:
    return {"mean": mean, "std": std, "min": lo, "max": hi}


def _config_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "options"
        lines.append(f"invalid option ({loc}): {err['msg']}")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def summary_table(runs: list[RunSummary]) -> Table:
    """The headline figures of every run, one column per run."""
    table = Table(title="benchmark summary", show_lines=False)
    table.add_column("metric")
    for run in runs:
        table.add_column(run.label, justify="right")
    rows: list[tuple[str, list[str]]] = [
        ("requests ok / failed", [f"{r.requests_ok} / {r.requests_failed}" for r in runs]),
        ("failures", [", ".join(f"{k}={v}" for k, v in r.failures.items()) or "-" for r in runs]),
        ("warmup excluded", [str(r.warmup_excluded) for r in runs]),
        ("duration s", [_num(r.duration_s, 2) for r in runs]),
        ("achieved rate /s", [_num(r.achieved_rate, 2) for r in runs]),
        ("requests /s", [_num(r.request_throughput, 2) for r in runs]),
        ("output tokens /s", [_num(r.output_token_throughput) for r in runs]),
        ("goodput /s", [_num(r.goodput, 2) for r in runs]),
    ]
    vector = operation_rows(runs)
    if vector:
        rows = [row for row in rows if row[0] != "output tokens /s"]
    for name in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms", "schedule_delay_ms"):
        if vector and name in ("ttft_ms", "tpot_ms", "itl_ms"):
            continue  # no tokens in vector operations
        for stat in ("p50", "p99"):
            values = [_ms(getattr(getattr(r, name), stat)) for r in runs]
            rows.append((f"{name.removesuffix('_ms')} {stat} ms", values))
    rows.extend(vector)
    for label, values in rows:
        table.add_row(label, *values)
    return table


async def _run(config: BenchConfig, progress: bool | None, out_dir: Path) -> BenchResult:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    try:
        return await run_benchmark(config, stop_event=stop, progress=progress, out_dir=out_dir)
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _known_backend(name: str) -> str:
    try:
        backend_class(name)
    except ExtensionError as exc:
        raise typer.BadParameter(str(exc)) from None
    return name


@bench_app.command("run")
def run_command(
    target: Annotated[
        str,
        typer.Option(help="Base URL (http://h:8000) or the id of a running deployed service."),
    ],
    backend: Annotated[
        str,
        typer.Option(
            help="API to speak: a registered backend (openai_completions, openai_chat, "
            "ollama_generate, chroma, qdrant, or a plugin's).",
            callback=_known_backend,
        ),
    ] = "openai_completions",
    model: Annotated[str | None, typer.Option(help="Model name (default: first listed).")] = None,
    profile: Annotated[ProfileKind, typer.Option(rich_help_panel=_LOAD)] = (
        ProfileKind.SYNCHRONOUS
    ),
    rate: Annotated[
        float | None, typer.Option(help="Requests/s (constant, poisson).", rich_help_panel=_LOAD)
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="In-flight requests.", rich_help_panel=_LOAD)
    ] = None,
    burstiness: Annotated[
        float, typer.Option(help="Gamma shape; 1 = Poisson.", rich_help_panel=_LOAD)
    ] = 1.0,
    sweep_rates: Annotated[int, typer.Option(help="Rates in a sweep.", rich_help_panel=_LOAD)] = 5,
    duration: Annotated[
        float | None, typer.Option(help="Measured seconds.", rich_help_panel=_STOP)
    ] = None,
    requests: Annotated[
        int | None, typer.Option(help="Measured requests.", rich_help_panel=_STOP)
    ] = None,
    warmup_requests: Annotated[int, typer.Option(rich_help_panel=_STOP)] = 0,
    warmup_seconds: Annotated[float, typer.Option(rich_help_panel=_STOP)] = 0.0,
    request_timeout: Annotated[float, typer.Option(help="Seconds.", rich_help_panel=_STOP)] = 300.0,
    input_tokens_mean: Annotated[int, typer.Option(rich_help_panel=_DATA)] = 128,
    input_tokens_std: Annotated[float, typer.Option(rich_help_panel=_DATA)] = 0.0,
    input_tokens_min: Annotated[int | None, typer.Option(rich_help_panel=_DATA)] = None,
    input_tokens_max: Annotated[int | None, typer.Option(rich_help_panel=_DATA)] = None,
    output_tokens_mean: Annotated[int, typer.Option(rich_help_panel=_DATA)] = 64,
    output_tokens_std: Annotated[float, typer.Option(rich_help_panel=_DATA)] = 0.0,
    output_tokens_min: Annotated[int | None, typer.Option(rich_help_panel=_DATA)] = None,
    output_tokens_max: Annotated[int | None, typer.Option(rich_help_panel=_DATA)] = None,
    dataset: Annotated[
        Path | None, typer.Option(help="JSONL or ShareGPT file.", rich_help_panel=_DATA)
    ] = None,
    dataset_format: Annotated[
        DatasetFormat | None,
        typer.Option(help="Default: jsonl for *.jsonl, else sharegpt.", rich_help_panel=_DATA),
    ] = None,
    slo_ttft_ms: Annotated[float | None, typer.Option(rich_help_panel=_SLO)] = None,
    slo_tpot_ms: Annotated[float | None, typer.Option(rich_help_panel=_SLO)] = None,
    slo_e2el_ms: Annotated[float | None, typer.Option(rich_help_panel=_SLO)] = None,
    slo_recall: Annotated[
        float | None, typer.Option(help="Least recall@k of a search.", rich_help_panel=_SLO)
    ] = None,
    vector_mode: Annotated[VectorMode, typer.Option(rich_help_panel=_VEC)] = VectorMode.SEARCH,
    collection: Annotated[str, typer.Option(rich_help_panel=_VEC)] = "aifactory-bench",
    distance: Annotated[Distance, typer.Option(rich_help_panel=_VEC)] = Distance.L2,
    top_k: Annotated[int, typer.Option(rich_help_panel=_VEC)] = 10,
    batch_size: Annotated[int, typer.Option(help="Rows per upsert.", rich_help_panel=_VEC)] = 100,
    search_fraction: Annotated[
        float, typer.Option(help="Mixed mode: share of searches.", rich_help_panel=_VEC)
    ] = 0.9,
    filter_: Annotated[
        str | None,
        typer.Option("--filter", help="Metadata equality, key=value.", rich_help_panel=_VEC),
    ] = None,
    recreate: Annotated[
        bool | None,
        typer.Option(
            "--recreate/--no-recreate",
            help="Drop and create the collection first (default: ingest only).",
            rich_help_panel=_VEC,
        ),
    ] = None,
    ef_search: Annotated[int | None, typer.Option(rich_help_panel=_VEC)] = None,
    vectors: Annotated[
        Path | None,
        typer.Option(help=".npy, .fvecs or .jsonl (default: synthetic).", rich_help_panel=_VEC),
    ] = None,
    queries_file: Annotated[Path | None, typer.Option(rich_help_panel=_VEC)] = None,
    ground_truth: Annotated[
        Path | None, typer.Option(help=".ivecs or .npy of row ids.", rich_help_panel=_VEC)
    ] = None,
    dimension: Annotated[int, typer.Option(help="Synthetic.", rich_help_panel=_VEC)] = 128,
    count: Annotated[int, typer.Option(help="Synthetic rows.", rich_help_panel=_VEC)] = 10_000,
    queries: Annotated[int, typer.Option(help="Held-out queries.", rich_help_panel=_VEC)] = 100,
    distribution: Annotated[
        VectorDistribution, typer.Option(rich_help_panel=_VEC)
    ] = VectorDistribution.NORMAL,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: cores).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Results directory (default: bench-results/<time>).")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Non-streamed requests.")] = False,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Default: when a TTY.")
    ] = None,
) -> None:
    """Run a benchmark against TARGET and write its results."""
    console = Console(stderr=True)
    is_vector = backend_class(backend).kind is RequestKind.VECTOR
    ingest = is_vector and vector_mode is VectorMode.INGEST
    if duration is None and requests is None and not ingest:
        duration = DEFAULT_DURATION_S
    fmt = dataset_format
    if dataset is not None and fmt is None:
        fmt = DatasetFormat.JSONL if dataset.suffix == ".jsonl" else DatasetFormat.SHAREGPT
    try:
        urls = resolve_target(settings(), target)
    except TargetNotFound as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
    raw: dict[str, Any] = {
        "target": urls[0],
        "endpoints": urls[1:],
        "backend": backend,
        "model": model,
        "stream": not no_stream,
        "profile": profile,
        "rate": rate,
        "concurrency": concurrency,
        "burstiness": burstiness,
        "sweep_rates": sweep_rates,
        "duration_s": duration,
        "requests": requests,
        "warmup_requests": warmup_requests,
        "warmup_s": warmup_seconds,
        "request_timeout_s": request_timeout,
        "seed": seed,
        "dataset": {
            "format": fmt or DatasetFormat.SYNTHETIC,
            "path": dataset,
            "input_tokens": _dist(
                input_tokens_mean, input_tokens_std, input_tokens_min, input_tokens_max
            ),
            "output_tokens": _dist(
                output_tokens_mean, output_tokens_std, output_tokens_min, output_tokens_max
            ),
        },
        "slo": {
            "ttft_ms": slo_ttft_ms,
            "tpot_ms": slo_tpot_ms,
            "e2el_ms": slo_e2el_ms,
            "recall": slo_recall,
        },
    }
    if is_vector:
        try:
            raw["vector"] = vector_settings(
                mode=vector_mode,
                collection=collection,
                distance=distance,
                top_k=top_k,
                batch_size=batch_size,
                search_fraction=search_fraction,
                filter_text=filter_,
                recreate=recreate,
                ef_search=ef_search,
                vectors=vectors,
                queries_file=queries_file,
                ground_truth=ground_truth,
                dimension=dimension,
                count=count,
                queries=queries,
                distribution=distribution,
                seed=seed,
            )
        except ValueError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(EXIT_USAGE) from exc
    if workers is not None:
        raw["workers"] = workers
    try:
        config = BenchConfig.model_validate(raw)
    except ValidationError as exc:
        console.print(f"[red]{_config_errors(exc)}[/red]")
        raise typer.Exit(EXIT_USAGE) from exc
    out_dir = out or Path("bench-results") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(_run(config, progress, out_dir))
    except LoadgenError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(EXIT_USAGE) from exc
    paths = write_results(result, out_dir)
    Console().print(summary_table(result.summary.runs))
    console.print(f"results: {paths['summary']}, {paths['csv']}, {paths['records']}")
    if result.summary.state is BenchState.CANCELLED:
        console.print("[yellow]stopped early: partial results (state cancelled)[/yellow]")
        raise typer.Exit(EXIT_INTERRUPTED)


@bench_app.command("export")
def export_command(
    results: Annotated[Path, typer.Argument(help="A results folder or its records.parquet.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="Default: records.<format> beside it.")] = None,
) -> None:
    """Write a run's records in the older formats (JSON lines, CSV), streamed from Parquet."""
    source = results / RECORDS_FILE if results.is_dir() else results
    if not source.is_file():
        raise typer.BadParameter(f"no records file at {source}")
    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter(f"--format: {fmt!r}; use jsonl or csv")
    target = out or source.with_name(f"records.{fmt}")
    count = export_records(source, target, fmt)
    Console(stderr=True).print(f"{count:,} records → {target}")


@bench_app.command("worker")
def worker_command(
    benchmark_id: Annotated[str, typer.Option(help="The benchmark whose orders to follow.")],
    nats_url: Annotated[
        str | None, typer.Option(help="NATS server (default: AIFACTORY_NATS_URL).")
    ] = None,
    worker_id: Annotated[
        int | None,
        typer.Option(
            min=0, help="Index in the job (default: AIFACTORY_WORKER_ID, then SLURM_PROCID)."
        ),
    ] = None,
) -> None:
    """Run as one remote load-generator worker (started by the workers' batch job).

    Orders and the target's API key come from NATS, never from the command line; the bus
    token, if any, from AIFACTORY_NATS_TOKEN.
    """
    from aifactory.loadgen.remote.worker import worker_main  # only workers need nats here

    raise typer.Exit(worker_main(benchmark_id, nats_url=nats_url, worker=worker_id))
