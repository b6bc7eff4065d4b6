"""The ``simulate`` command, shared by ``aifactory simulate`` and ``python -m``.

Defined here (not in ``aifactory/``) so the simulator can run as a SLURM job from the service
package alone; the aifactory CLI only registers this function.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from aifactory.simulator.config import SimulatorConfig, SimulatorConfigError
from aifactory.simulator.server import run

_LATENCY = "Latency model"
_FAULTS = "Fault injection"
#: vLLM's variable for the key its OpenAI server requires.
API_KEY_ENV = "VLLM_API_KEY"
_GPUS = "Emulated GPUs"


def simulate(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0 = any free port).")] = 8000,
    model: Annotated[str, typer.Option(help="Served model name.")] = "simulator",
    ttft_ms: Annotated[
        float, typer.Option(help="Fixed time to first token (ms).", rich_help_panel=_LATENCY)
    ] = 20.0,
    prompt_token_ms: Annotated[
        float, typer.Option(help="Extra TTFT per prompt token (ms).", rich_help_panel=_LATENCY)
    ] = 0.0,
    itl_ms: Annotated[
        float, typer.Option(help="Inter-token latency (ms).", rich_help_panel=_LATENCY)
    ] = 5.0,
    itl_jitter_ms: Annotated[
        float,
        typer.Option(help="Uniform ITL jitter, +/- this many ms.", rich_help_panel=_LATENCY),
    ] = 0.0,
    output_tokens: Annotated[
        int | None,
        typer.Option(
            help="Every response has exactly N tokens (default: min(max_tokens, "
            "--default-output-tokens)).",
            rich_help_panel=_LATENCY,
        ),
    ] = None,
    default_output_tokens: Annotated[
        int,
        typer.Option(
            help="Natural answer length when the request's limit is higher.",
            rich_help_panel=_LATENCY,
        ),
    ] = 128,
    max_running: Annotated[
        int,
        typer.Option(help="Max concurrently decoding sequences; more wait in a FIFO queue."),
    ] = 256,
    error_rate: Annotated[
        float, typer.Option(help="Fraction of requests answered HTTP 500.", rich_help_panel=_FAULTS)
    ] = 0.0,
    cut_rate: Annotated[
        float,
        typer.Option(
            help="Fraction of requests whose connection is closed after half the tokens.",
            rich_help_panel=_FAULTS,
        ),
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed for text, jitter and faults.")] = 0,
    emulate_gpus: Annotated[
        int,
        typer.Option(
            help="Also serve dcgm-exporter's GPU series for N emulated GPUs, derived from "
            "the load (for the monitor, reports and dashboards without a GPU).",
            rich_help_panel=_GPUS,
        ),
    ] = 0,
    gpu_memory_mib: Annotated[
        int, typer.Option(help="Memory of each emulated GPU (MiB).", rich_help_panel=_GPUS)
    ] = 81559,
    log_level: Annotated[str, typer.Option(help="debug|info|warning|error|critical")] = "info",
) -> None:
    """Run an OpenAI- and Ollama-compatible inference simulator with vLLM metrics.

    As vLLM does, requests to /v1/* must carry 'Authorization: Bearer <key>' when the
    VLLM_API_KEY environment variable is set (there is no option: a key on a command line
    is visible to every user of the node).
    """
    try:
        config = SimulatorConfig.from_options(
            host=host,
            port=port,
            model=model,
            ttft_ms=ttft_ms,
            prompt_token_ms=prompt_token_ms,
            itl_ms=itl_ms,
            itl_jitter_ms=itl_jitter_ms,
            output_tokens=output_tokens,
            default_output_tokens=default_output_tokens,
            max_running=max_running,
            error_rate=error_rate,
            cut_rate=cut_rate,
            seed=seed,
            emulate_gpus=emulate_gpus,
            gpu_memory_mib=gpu_memory_mib,
            log_level=log_level.lower(),
            api_key=os.environ.get(API_KEY_ENV) or None,
        )
    except SimulatorConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from exc
    run(config)


def main() -> None:
    """``python -m aifactory.simulator``: a one-command typer app."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(simulate)
    app()
