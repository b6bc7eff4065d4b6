"""``aifactory recipes prepare`` on a login node: the image into the SIF cache by digest,
weights and Ollama models into the site cache, and jobs then run the cached SIF.

Apptainer is not packaged in Debian, so ``apptainer`` here is a stand-in that writes a file
for ``pull`` and runs the command for ``exec``; ``huggingface-cli`` records its call;
``ollama serve`` is the simulator speaking Ollama's API. What runs for real is ours: the
commands and their order, the digest keying, the index, the HTTP pulls, the rendering.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aifactory.cli.main import app
from aifactory.experiment.provenance import image_provenance
from aifactory.shared.images import read_index
from aifactory.shared.settings import Settings
from tests.shellkit import write

pytestmark = pytest.mark.tools

APPTAINER = """#!/bin/bash
echo "$*" >> "$AIF_CAPTURE/apptainer"
case $1 in
  pull) echo "SIF of $4" > "$3" ;;
  exec) shift; while [[ $1 == --* ]]; do shift 2; done; shift; exec "$@" ;;
  *) exit 2 ;;
esac
"""
HF_CLI = """#!/bin/bash
echo "$* HF_HOME=$HF_HOME" >> "$AIF_CAPTURE/huggingface-cli"
"""
OLLAMA = """#!/bin/bash
[[ $1 == serve ]] || exit 2
exec aifactory simulate --host 127.0.0.1 --port "${OLLAMA_HOST##*:}"
"""


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    capture = tmp_path / "capture"
    capture.mkdir()
    for name, body in {"apptainer": APPTAINER, "huggingface-cli": HF_CLI, "ollama": OLLAMA}.items():
        write(tmp_path / "bin" / name, body, 0o755)
    path = os.pathsep.join([str(tmp_path / "bin"), str(Path(sys.executable).parent)])
    monkeypatch.setenv("PATH", f"{path}:{os.environ['PATH']}")
    monkeypatch.setenv("AIF_CAPTURE", str(capture))
    monkeypatch.setenv("AIFACTORY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("AIFACTORY_SITE__CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AIFACTORY_NATS_URL", raising=False)
    return capture


def test_prepare_caches_the_image_by_digest_and_fetches_the_weights(
    tmp_path: Path, stand_ins: Path
) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["recipes", "prepare", "inference/vllm-single-node"])
    assert first.exit_code == 0, first.output
    image = "docker://vllm/vllm-openai:v0.33.0"
    [entry] = read_index(tmp_path / "cache").images.values()
    assert entry.path.parent == tmp_path / "cache" / "apptainer" / "sif"
    assert entry.path.name == entry.digest.replace(":", "-") + ".sif"
    assert entry.path.read_text() == f"SIF of {image}\n"
    hf = (stand_ins / "huggingface-cli").read_text()
    assert f"download facebook/opt-125m HF_HOME={tmp_path / 'cache' / 'huggingface'}" in hf
    # A second prepare pulls nothing; the rendered job runs the cached SIF, not the registry.
    again = runner.invoke(app, ["recipes", "prepare", "inference/vllm-single-node"])
    assert again.exit_code == 0 and "cached as" in again.output
    calls = (stand_ins / "apptainer").read_text().splitlines()
    assert sum(call.startswith("pull ") for call in calls) == 1
    script = runner.invoke(app, ["recipes", "render", "inference/vllm-single-node"]).output
    assert str(entry.path) in script and image not in script
    # An experiment records which bytes ran: the digest, found from the SIF path.
    settings = Settings()
    assert image_provenance(str(entry.path), settings) == {
        "image": image,
        "ran": str(entry.path),
        "digest": entry.digest,
    }


def test_prepare_pulls_ollama_models_through_the_api(tmp_path: Path, stand_ins: Path) -> None:
    result = CliRunner().invoke(
        app, ["recipes", "prepare", "inference/ollama", "--set", 'models=["llama3.2:1b"]']
    )
    assert result.exit_code == 0, result.output
    assert '"status":"success"' in result.output.replace(" ", "")
    assert "ready llama3.2:1b" in result.output


def test_a_failed_pull_is_an_error_naming_the_model(tmp_path: Path, stand_ins: Path) -> None:
    result = CliRunner().invoke(
        app, ["recipes", "prepare", "inference/ollama", "--set", 'models=["missing-x"]']
    )
    assert result.exit_code != 0
    assert "pulling missing-x failed" in result.output and "does not exist" in result.output
    assert "Traceback" not in result.output
