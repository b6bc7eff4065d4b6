"""The site's part of every job: scheduler defaults, setup commands, caches."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from aifactory.shared.recipes import load_recipe
from aifactory.shared.recipes.site import apply_site
from aifactory.shared.render import render_script
from aifactory.shared.settings import Settings
from tests.recipekit import ROOT


def site(tmp_path: Path, **changes: object) -> Settings:
    return Settings(state_dir=tmp_path / "state", jobs_dir=Path("/project/p200/jobs"), **changes)


def test_scheduler_defaults_fill_what_the_recipe_leaves_open(tmp_path: Path) -> None:
    settings = site(tmp_path, slurm={"partition": "batch", "account": "p200", "qos": "short"})
    recipe = apply_site(load_recipe("inference/simulator", ROOT), settings)
    # The recipe's own partition wins; account and QoS come from the site.
    assert (recipe.resources.partition, recipe.resources.account) == ("cpu", "p200")
    assert recipe.resources.qos == "short"
    open_partition = load_recipe("inference/simulator", ROOT, {"resources": {"partition": None}})
    assert apply_site(open_partition, settings).resources.partition == "batch"


def test_caches_go_to_the_site_path_never_home(tmp_path: Path) -> None:
    recipe = apply_site(load_recipe("inference/vllm-single-node", ROOT), site(tmp_path))
    assert recipe.environment["HF_HOME"] == "/project/p200/cache/huggingface"
    assert recipe.environment["APPTAINER_CACHEDIR"] == "/project/p200/cache/apptainer"
    assert "HF_HUB_OFFLINE" not in recipe.environment
    assert any(b.source == "/project/p200/cache" for b in recipe.apptainer.binds)
    offline = site(tmp_path, site={"cache_dir": "/scratch/p200/cache", "offline": True})
    recipe = apply_site(load_recipe("inference/vllm-single-node", ROOT), offline)
    assert recipe.environment["HF_HOME"] == "/scratch/p200/cache/huggingface"
    assert recipe.environment["HF_HUB_OFFLINE"] == "1"


def test_setup_runs_site_first_as_words(tmp_path: Path) -> None:
    settings = site(tmp_path, site={"setup": ["module load Apptainer", ["module", "load", "x y"]]})
    base = load_recipe("inference/vllm-single-node", ROOT, {"setup": ["ml CUDA/12"]})
    recipe = apply_site(base, settings)
    assert recipe.setup == [
        ["module", "load", "Apptainer"],
        ["module", "load", "x y"],
        ["ml", "CUDA/12"],
    ]
    script = render_script(
        recipe, job_name="svc", workdir=Path("/project/p200/jobs/svc"), service_id="svc"
    )
    lines = script.splitlines()
    begin, end = lines.index("# >>> aifactory setup >>>"), lines.index("# <<< aifactory setup <<<")
    commands = [ln for ln in lines[begin + 1 : end] if not ln.startswith("echo ")]
    assert commands == ["module load Apptainer", "module load 'x y'", "ml CUDA/12"]
    # Setup comes before the runtime check that needs it (module load Apptainer).
    assert script.index("module load Apptainer") < script.index("command -v apptainer")


@pytest.mark.parametrize("bad", ["", "   ", "'unbalanced", ["-x"], ["$(id)"], ["a;b"]])
def test_bad_setup_commands_are_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(ValidationError, match="setup"):
        Settings(site={"setup": [bad]})
