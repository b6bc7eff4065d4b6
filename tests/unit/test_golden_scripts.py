"""Golden batch scripts: every recipe rendered from fixed inputs, compared byte for byte.

A change to a template, a recipe or the renderer shows up here as a diff of the scripts a
reviewer can read. When the change is intended, regenerate and commit the files:

    AIFACTORY_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_golden_scripts.py

(``tests/golden/<category>/<name>.sh``; a file for a recipe that no longer exists fails the
test until it is deleted.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aifactory.shared.recipes import list_recipes, load_recipe
from aifactory.shared.render import render_script

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"
GOLDEN = REPO / "tests" / "golden"
UPDATE = os.environ.get("AIFACTORY_UPDATE_GOLDEN") == "1"

#: The fixed inputs: what a deploy of service ``svc-golden`` under /scratch would pass.
WORKDIR = Path("/scratch/aifactory/jobs/svc-golden")
REFS = sorted(r.ref for r in list_recipes(RECIPES))


def rendered(ref: str) -> str:
    recipe = load_recipe(ref, RECIPES)
    return render_script(
        recipe, job_name="aif-svc-golden", workdir=WORKDIR, service_id="svc-golden"
    )


@pytest.mark.parametrize("ref", REFS)
def test_rendered_script_matches_its_golden_file(ref: str) -> None:
    golden = GOLDEN / f"{ref}.sh"
    script = rendered(ref)
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(script)
    assert golden.is_file(), f"no golden file for {ref}: run with AIFACTORY_UPDATE_GOLDEN=1"
    assert script == golden.read_text(), (
        f"{ref} renders differently from {golden.relative_to(REPO)}; if intended, "
        "regenerate with AIFACTORY_UPDATE_GOLDEN=1 and commit the diff"
    )


def test_no_golden_file_outlives_its_recipe() -> None:
    stale = sorted(
        str(p.relative_to(GOLDEN).with_suffix(""))
        for p in GOLDEN.rglob("*.sh")
        if str(p.relative_to(GOLDEN).with_suffix("")) not in REFS
    )
    assert stale == [], f"golden files without a recipe (delete them): {stale}"
