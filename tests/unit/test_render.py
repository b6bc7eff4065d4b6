"""Rendering: what the batch scripts say, and what the renderer refuses to write."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from aifactory.shared.recipes import RecipeError, list_recipes, load_recipe, parse_set_options
from aifactory.shared.render import ENV_BEGIN, ENV_END, Raw, RenderError, environment, render_script

ROOT = Path(__file__).resolve().parents[2] / "recipes"
WORKDIR = Path("/scratch/jobs/svc-1")


def render(ref: str, overrides: dict[str, Any] | None = None, **kwargs: Any) -> str:
    recipe = load_recipe(ref, ROOT, overrides)
    args: dict[str, Any] = {"job_name": "svc-1", "workdir": WORKDIR, "service_id": "svc-1"}
    return render_script(recipe, **(args | kwargs))


def sbatch(script: str) -> dict[str, str]:
    lines = [
        ln.removeprefix("#SBATCH --") for ln in script.splitlines() if ln.startswith("#SBATCH")
    ]
    return dict(ln.split("=", 1) for ln in lines)


def launch_line(script: str) -> list[str]:
    """The words of the line that starts the (first) server, parsed like bash would."""
    line = next(ln for ln in script.splitlines() if '"${launcher[@]}"' in ln)
    return shlex.split(line)


def launcher(script: str) -> list[str]:
    line = next(ln for ln in script.splitlines() if ln.startswith("launcher=("))
    return shlex.split(line.removeprefix("launcher=(").removesuffix(")"))


@pytest.mark.parametrize("ref", sorted(r.ref for r in list_recipes(ROOT)))
def test_every_recipe_renders_a_complete_script(ref: str) -> None:
    script = render(ref)
    assert script.startswith("#!/bin/bash\n#SBATCH --job-name=svc-1\n")
    assert "set -euo pipefail" in script and script.endswith("\n")
    assert script.index(ENV_BEGIN) < script.index(ENV_END)
    header = sbatch(script)
    recipe = load_recipe(ref, ROOT)
    assert header["mem"] == recipe.resources.memory
    assert header["time"] == recipe.resources.time_limit
    assert header["nodes"] == str(recipe.resources.nodes)
    assert ("gres" in header) == (recipe.resources.gpu > 0)
    assert f"cd -- {WORKDIR}" in script
    assert 'echo "aifactory: job ${SLURM_JOB_ID:-local} of service svc-1' in script
    # every #SBATCH line comes before the first command, or sbatch ignores it
    first_command = script.index("set -euo")
    assert all(script.index(f"#SBATCH --{k}=") < first_command for k in header)


def test_gpu_override_gives_gres_and_nv() -> None:
    script = render("inference/vllm-single-node", parse_set_options(["resources.gpu=4"]))
    assert "#SBATCH --gres=gpu:4\n" in script
    assert launcher(script)[:3] == ["apptainer", "exec", "--nv"]
    assert launcher(script)[-1] == "docker://vllm/vllm-openai:v0.33.0"
    words = launch_line(script)
    assert words[:5] == ["exec", "${launcher[@]}", "vllm", "serve", "facebook/opt-125m"]
    assert words[words.index("--port") + 1] == "${aif_replica_port[0]}"
    assert "aif_replica_port[0]=$(aif_claim_port 8000)" in script  # wanted first


def test_gpu_type_partition_account_qos() -> None:
    overrides = {"resources": {"gpu_type": "a100", "account": "p200", "qos": "default"}}
    header = sbatch(render("inference/vllm-single-node", overrides))
    assert header["gres"] == "gpu:a100:1"
    assert (header["partition"], header["account"], header["qos"]) == ("gpu", "p200", "default")
    assert header["ntasks-per-node"] == "1" and header["cpus-per-task"] == "8"


def test_no_gpu_no_nv_and_binds() -> None:
    script = render("vector-db/qdrant")
    words = launcher(script)
    assert "--nv" not in words and "#SBATCH --gres" not in script
    assert words[:2] == ["apptainer", "exec"]
    assert f"{WORKDIR}/qdrant/storage:/qdrant/storage" in words
    assert words[words.index("--pwd") + 1] == "/qdrant" and "--writable-tmpfs" in words
    assert f"mkdir -p -- {WORKDIR}/qdrant/storage" in script
    # Ports are chosen at job start; the environment refers to the chosen ones.
    assert 'export QDRANT__SERVICE__HTTP_PORT="${aif_port_http}"' in script
    assert 'export QDRANT__SERVICE__GRPC_PORT="${aif_port_grpc}"' in script
    assert "aif_port_grpc=$(aif_claim_port 6334)" in script


def test_apptainer_run_mode_passes_args_to_runscript() -> None:
    script = render("inference/ollama")
    assert launcher(script)[:3] == ["apptainer", "run", "--nv"]
    assert launch_line(script)[1:] == ["serve", "&"]  # in the background: models first
    assert 'export OLLAMA_HOST=0.0.0.0:"${aif_port_http}"' in script


def test_native_recipes_substitute_placeholders() -> None:
    script = render("inference/simulator", {"ports": {"http": 9123}})
    sim = launch_line(script)
    assert sim[:4] == ["exec", "${launcher[@]}", "aifactory", "simulate"]
    assert sim[sim.index("--port") + 1] == "${aif_replica_port[0]}"
    assert "aif_replica_port[0]=$(aif_claim_port 9123)" in script
    assert sim[sim.index("--model") + 1] == "simulated-llm"
    chroma = launch_line(render("vector-db/chroma"))
    assert chroma[chroma.index("--path") + 1] == f"{WORKDIR}/chroma-data"


def test_replicas_one_server_per_gpu_group() -> None:
    overrides = {"resources": {"gpu": 8}, "replicas": {"gpu_per_replica": 2, "base_port": 9000}}
    script = render("inference/vllm-replicas", overrides)
    servers = [ln for ln in script.splitlines() if "vllm serve" in ln]
    assert len(servers) == 4 and all(ln.endswith(" &") for ln in servers)
    ports = [shlex.split(ln)[shlex.split(ln).index("--port") + 1] for ln in servers]
    assert ports == [f"${{aif_replica_port[{i}]}}" for i in range(4)]
    for i in range(4):
        assert f"aif_replica_port[{i}]=$(aif_claim_port {9000 + i})" in script
    assert 'devices=$(IFS=,; echo "${gpus[*]:6:2}")' in script
    assert "trap on_signal TERM INT" in script and "wait -n" in script
    assert "exec " not in "\n".join(servers)


def test_multinode_ray_head_workers_and_parallelism() -> None:
    script = render("inference/vllm-multinode")
    assert "--head --port=6379 --block &" in script
    srun = next(ln for ln in script.splitlines() if ln.startswith("srun "))
    assert "--nodes=1 --ntasks=1" in srun and '--exclude="$head_node"' in srun
    server = next(shlex.split(ln) for ln in script.splitlines() if "vllm serve" in ln)
    assert server[server.index("--tensor-parallel-size") + 1] == "4"
    assert server[server.index("--pipeline-parallel-size") + 1] == "2"
    assert server[server.index("--distributed-executor-backend") + 1] == "ray"


def test_extra_env_and_recipe_env_are_exported() -> None:
    script = render("inference/simulator", {"environment": {"A": "1"}}, extra_env={"B": "x y"})
    section = script[script.index(ENV_BEGIN) : script.index(ENV_END)]
    assert "export A=1\n" in section and "export B='x y'\n" in section
    assert "export AIFACTORY_SERVICE_ID=svc-1\n" in section


def test_secret_values_never_reach_the_script(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_SENTINEL_VALUE_42")
    script = render("inference/vllm-single-node")
    assert "hf_SENTINEL_VALUE_42" not in script
    assert "secrets=(HF_TOKEN)" in script and '"${!secret:-}"' in script


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"job_name": "../evil"}, "job_name"),
        ({"job_name": "a b"}, "job_name"),
        ({"job_name": "x\n#SBATCH --wrap=id"}, "job_name"),
        ({"service_id": "$(id)"}, "service_id"),
        ({"workdir": Path("relative/dir")}, "workdir"),
        ({"workdir": Path("/a\nb")}, "workdir"),
        ({"extra_env": {"A B": "x"}}, "extra_env.'A B'"),
        ({"extra_env": {"HF_TOKEN": "hf_x"}}, "extra_env.HF_TOKEN"),
        ({"extra_env": {"X": "a\x00b"}}, "extra_env.X"),
    ],
)
def test_render_rejects_unsafe_inputs(kwargs: dict[str, Any], path: str) -> None:
    with pytest.raises(RenderError) as exc:
        render("inference/simulator", **kwargs)
    assert exc.value.errors[0].path == path
    assert isinstance(exc.value, RecipeError)  # the server catches RecipeError around render


def test_workdir_with_colon_cannot_be_bound() -> None:
    with pytest.raises(RenderError, match="bind paths cannot hold"):
        render("vector-db/qdrant", workdir=Path("/scratch/a:b"))


def test_finalize_quotes_values_a_template_forgot_to_quote() -> None:
    env = environment()
    hostile = "$(touch /tmp/pwned); `id` 'q' \"d\""
    assert env.from_string("echo {{ x }}").render(x=hostile) == "echo " + shlex.quote(hostile)
    assert env.from_string("echo {{ x|q }}").render(x=hostile) == "echo " + shlex.quote(hostile)
    assert env.from_string("{{ x }}").render(x=Raw("$HOME")) == "$HOME"
    assert env.from_string("{{ 8000 }}").render() == "8000"
    with pytest.raises(RenderError):
        env.from_string("{{ x }}").render(x=None)
    with pytest.raises(RenderError, match="cannot be emitted unquoted"):
        env.from_string("#SBATCH --x={{ x|plain }}").render(x="a b")
    with pytest.raises(RenderError, match="not a shell variable name"):
        env.from_string("export {{ x|name }}=1").render(x="A;B")
    # concatenating a Raw with user text yields a plain str, which gets quoted again
    assert env.from_string("{{ r ~ x }}").render(r=Raw("$"), x="(id)") == "'$(id)'"
