"""Rendered scripts against the real shell: bash -n, shellcheck, and actually running them.

Hostile values are proven inert by executing the rendered code in bash and checking that
the variable or argument arrives byte for byte and that no side effect happened. Programs
that cannot run here (apptainer, vllm, ray, srun, scontrol: no GPUs, no images, no
multi-node SLURM) are replaced on PATH by small scripts that record how they were called;
the batch script itself always runs for real.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from aifactory.shared.recipes import (
    RecipeError,
    deep_merge,
    list_recipes,
    load_recipe,
    parse_set_options,
)
from aifactory.shared.render import ENV_BEGIN, ENV_END
from tests.conftest import need_tool
from tests.shellkit import (
    NATIVE,
    ROOT,
    assert_no_side_effects,
    hostile,
    render,
    run_bash,
    write,
)

pytestmark = pytest.mark.tools


# -- static checks over every shipped recipe and some overrides --------------------------

VARIANTS: list[tuple[str, dict[str, Any]]] = [(r.ref, {}) for r in list_recipes(ROOT)] + [
    ("inference/vllm-single-node", {"resources": {"gpu": 4}}),
    ("inference/vllm-single-node", {"resources": {"gpu": 0}, **NATIVE}),
    ("inference/vllm-replicas", {"resources": {"gpu": 8}, "replicas": {"gpu_per_replica": 2}}),
    ("inference/vllm-replicas", NATIVE),
    ("inference/vllm-replicas", {"resources": {"nodes": 3, "gpu": 4}}),
    ("inference/vllm-multinode", {"resources": {"nodes": 4, "gpu_type": "a100"}}),
    ("inference/vllm-multinode", NATIVE),
    ("inference/ollama", {"resources": {"gpu": 0}, "secrets_env": ["OLLAMA_KEY"]}),
    ("vector-db/qdrant", {"resources": {"account": "p200", "qos": "short", "gpu": 2}}),
    ("vector-db/chroma", {"resources": {"time_limit": "2-00:00:00", "memory": "0"}}),
]


@pytest.mark.parametrize(("ref", "overrides"), VARIANTS, ids=lambda v: str(v)[:60])
def test_rendered_script_passes_bash_n_and_shellcheck(
    ref: str, overrides: dict[str, Any], tmp_path: Path
) -> None:
    bash, shellcheck = need_tool("bash"), need_tool("shellcheck")
    script = write(
        tmp_path / "job.sh", render(load_recipe(ref, ROOT, overrides), tmp_path / "work")
    )
    syntax = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    lint = subprocess.run(
        [shellcheck, "--severity=style", "--shell=bash", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout


# -- hostile environment values ----------------------------------------------------------


def env_section(script: str) -> str:
    """The export lines between the markers. The real end marker is the last one: a value
    may contain the marker text, but always before the real one."""
    start = script.index(ENV_BEGIN)
    end = script.rindex(ENV_END)
    return script[start:end]


def printenv_after(section: str, tmp: Path) -> dict[str, str]:
    runner = write(tmp / "env.sh", section + "\nenv -0\n")
    done = run_bash(runner, tmp)
    assert done.returncode == 0, done.stderr.decode()
    pairs = [item.split("=", 1) for item in done.stdout.decode().split("\0") if item]
    return dict(pairs)


def test_hostile_env_values_from_a_recipe_file_are_inert(tmp_path: Path) -> None:
    values = hostile(tmp_path)
    data = yaml.safe_load((ROOT / "inference" / "simulator.yaml").read_text())
    data["environment"] = {f"H{i}": v for i, v in enumerate(values)}
    root = tmp_path / "recipes"
    write(root / "inference" / "simulator.yaml", yaml.safe_dump(data, allow_unicode=True))
    recipe = load_recipe("inference/simulator", root)
    env = printenv_after(env_section(render(recipe, tmp_path / "w")), tmp_path)
    for i, value in enumerate(values):
        assert env[f"H{i}"] == value
    assert env["AIFACTORY_SERVICE_ID"] == "svc-test"
    assert_no_side_effects(tmp_path)


def test_hostile_env_values_from_overrides_and_extra_env_are_inert(tmp_path: Path) -> None:
    values = hostile(tmp_path)
    set_options = [
        f"environment.S1=$(touch {tmp_path}/pwned10)",
        f"environment.S2='`touch {tmp_path}/pwned11`'",
        f"environment.S3=a;touch {tmp_path}/pwned12&&b",
    ]
    overrides = deep_merge(
        parse_set_options(set_options),
        {"environment": {f"O{i}": v for i, v in enumerate(values)}},
    )
    with pytest.raises(RecipeError, match="cannot start any token"):
        parse_set_options([f"environment.S2=`touch {tmp_path}/pwned11`"])
    recipe = load_recipe("inference/simulator", ROOT, overrides)
    extra = {f"E{i}": v for i, v in enumerate(values)}
    env = printenv_after(env_section(render(recipe, tmp_path / "w", extra_env=extra)), tmp_path)
    assert env["S1"] == f"$(touch {tmp_path}/pwned10)"
    assert env["S2"] == f"`touch {tmp_path}/pwned11`"
    assert env["S3"] == f"a;touch {tmp_path}/pwned12&&b"
    for i, value in enumerate(values):
        assert env[f"O{i}"] == value and env[f"E{i}"] == value
    assert_no_side_effects(tmp_path)


# -- whole scripts, run for real ---------------------------------------------------------


def test_hostile_command_args_survive_the_whole_native_script(tmp_path: Path) -> None:
    values = hostile(tmp_path)
    overrides = {
        "command": ["printf", "%s\\0"],
        "extra_args": values,
        "environment": {"X": values[2]},
    }
    recipe = load_recipe("inference/simulator", ROOT, overrides)
    workdir = tmp_path / "work"
    script = write(tmp_path / "job.sh", render(recipe, workdir))
    done = run_bash(script, tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    marker = b"aifactory: starting simulator replica 0 on port 8000\n"
    assert done.stdout.startswith(b"aifactory: job local of service svc-test")
    argv = done.stdout.split(marker, 1)[1].decode().split("\0")
    assert argv == [*values, ""]
    assert workdir.is_dir()
    assert_no_side_effects(tmp_path)


FAKE_APPTAINER = """#!/bin/bash
printf '%s\\0' "$@" > "$AIF_CAPTURE/apptainer.argv"
printf '%s' "${HF_TOKEN-<unset>}" > "$AIF_CAPTURE/apptainer.hf_token"
"""


def test_apptainer_invocation_with_gpus_and_inherited_secret(tmp_path: Path) -> None:
    capture = tmp_path / "capture"
    capture.mkdir()
    write(tmp_path / "bin" / "apptainer", FAKE_APPTAINER, 0o755)
    values = hostile(tmp_path)
    overrides = deep_merge(parse_set_options(["resources.gpu=4"]), {"extra_args": values})
    recipe = load_recipe("inference/vllm-single-node", ROOT, overrides)
    text = render(recipe, tmp_path / "work")
    assert "#SBATCH --gres=gpu:4" in text
    script = write(tmp_path / "job.sh", text)
    path = f"{tmp_path / 'bin'}:{os.environ['PATH']}"
    env = {"PATH": path, "AIF_CAPTURE": str(capture), "HF_TOKEN": "hf_secret_value"}
    done = run_bash(script, tmp_path, env)
    assert done.returncode == 0, done.stderr.decode()
    argv = (capture / "apptainer.argv").read_bytes().decode().split("\0")[:-1]
    assert argv == [
        "exec",
        "--nv",
        "docker://vllm/vllm-openai:v0.33.0",
        "vllm",
        "serve",
        "facebook/opt-125m",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--tensor-parallel-size",
        "1",
        "--pipeline-parallel-size",
        "1",
        *values,
    ]
    assert (capture / "apptainer.hf_token").read_text() == "hf_secret_value"
    assert "hf_secret_value" not in text and b"not set" not in done.stderr
    assert_no_side_effects(tmp_path)

    env.pop("HF_TOKEN")
    done = run_bash(script, tmp_path, env)
    assert b"secret HF_TOKEN is not set in the submit environment" in done.stderr


def test_missing_apptainer_is_reported(tmp_path: Path) -> None:
    script = write(tmp_path / "job.sh", render(load_recipe("vector-db/qdrant", ROOT), tmp_path))
    bin_dir = tmp_path / "bin"  # this machine's tools, without any container runtime
    bin_dir.mkdir()
    for tool in [*Path("/usr/bin").iterdir(), *Path("/bin").iterdir()]:
        if tool.name not in ("apptainer", "singularity") and not (bin_dir / tool.name).exists():
            (bin_dir / tool.name).symlink_to(tool)
    done = run_bash(script, tmp_path, {"PATH": str(bin_dir)})
    assert b"apptainer not found" in done.stderr, done.stderr
    assert done.returncode == 127
