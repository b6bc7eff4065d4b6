"""Forms generated from the recipe and workload models, and posts read back into data."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from aifactory.services.server.ingress.web.benchmark_pages import workload_form
from aifactory.services.server.ingress.web.forms import (
    FormErrors,
    Kind,
    attach_model_error,
    changed_values,
    given_values,
    groups,
    match_field,
    model_defaults,
)
from aifactory.services.server.ingress.web.services_pages import recipe_form
from aifactory.shared.recipes import Recipe, RecipeError, load_recipe
from aifactory.shared.workload import Workload

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def _leaves(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every field path of the schema, nested models flattened (what the form must cover)."""
    out: set[str] = set()
    for name, info in model.model_fields.items():
        annotation = info.annotation
        candidate = annotation
        if get_origin(annotation) in (Union, types.UnionType):  # X | None
            inner = [a for a in get_args(annotation) if a is not type(None)]
            candidate = inner[0] if len(inner) == 1 else annotation
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            out |= _leaves(candidate, f"{prefix}{name}.")
        else:
            out.add(f"{prefix}{name}")
    return out


@pytest.fixture
def simulator() -> Recipe:
    return load_recipe("inference/simulator", RECIPES)


def test_the_deploy_form_covers_the_whole_recipe_schema(simulator: Recipe) -> None:
    fields = recipe_form(simulator)
    assert {f.path for f in fields} == _leaves(Recipe) - {"name", "category"}
    kinds = {f.path: f.kind for f in fields}
    assert kinds["resources.gpu"] is Kind.INT
    assert kinds["health.timeout"] is Kind.FLOAT
    assert kinds["distributed.ray"] is Kind.BOOL
    assert kinds["runtime"] is Kind.CHOICE
    assert kinds["extra_args"] is Kind.YAML and kinds["ports"] is Kind.YAML
    by_path = {f.path: f for f in fields}
    assert by_path["ports"].text == "{http: 8000}"
    assert "≥ 0" in by_path["resources.gpu"].hint
    assert [g for g, _ in groups(fields)][:3] == ["", "resources", "distributed"]
    assert len({f.id for f in fields}) == len(fields)  # one label per input


def test_only_changed_fields_become_overrides(simulator: Recipe) -> None:
    fields = recipe_form(simulator)
    form = {f.path: f.text for f in fields}
    assert changed_values(fields, form) == ({}, {})
    form |= {
        "resources.gpu": "2",
        "health.timeout": "60",  # 60 == 60.0: unchanged
        "ports": "{http: 9000}",
        "extra_args": "[--ttft-ms, 5]",
        "resources.partition": "",  # cleared: unset
        "distributed.ray": "true",
    }
    overrides, errors = changed_values(fields, form)
    assert not errors
    assert overrides == {
        "resources": {"gpu": 2, "partition": None},
        "ports": {"http": 9000},
        "extra_args": ["--ttft-ms", 5],
        "distributed": {"ray": True},
    }
    # The overrides are what the API takes: they validate as the recipe would.
    load_recipe("inference/simulator", RECIPES, overrides | {"distributed": {"ray": False}})


def test_unreadable_values_are_errors_at_their_field(simulator: Recipe) -> None:
    fields = recipe_form(simulator)
    form = {f.path: f.text for f in fields} | {"extra_args": "[unclosed", "resources.gpu": "two"}
    overrides, errors = changed_values(fields, form)
    assert "not a YAML value" in errors["extra_args"][0]
    assert overrides == {"resources": {"gpu": "two"}}  # left for the model to refuse
    with pytest.raises(RecipeError) as exc:
        load_recipe("inference/simulator", RECIPES, overrides)
    assert [e.path for e in exc.value.errors] == ["resources.gpu"]


def test_recipe_error_paths_find_their_input(simulator: Recipe) -> None:
    fields = recipe_form(simulator)
    assert match_field(fields, "extra_args[2]") == "extra_args"
    assert match_field(fields, "ports.http") == "ports"
    assert match_field(fields, "resources.gpu") == "resources.gpu"
    assert match_field(fields, "resources") == ""
    assert match_field(fields, "") == ""
    errors = FormErrors()
    errors.add(fields, "replicas", "needs gpu")
    assert errors.general == ["needs gpu"]


def test_the_workload_form_reads_as_the_api_body() -> None:
    fields = workload_form()
    by_path = {f.path: f for f in fields}
    assert by_path["backend"].kind is Kind.CHOICE and "openai_chat" in by_path["backend"].choices
    assert by_path["dataset.input_tokens.mean"].label == "input tokens mean"
    assert by_path["dataset.input_tokens.mean"].group == "dataset"
    form = {f.path: f.text for f in fields} | {"rate": "", "slo.ttft_ms": "200"}
    data, errors = given_values(fields, form)
    assert not errors
    assert "rate" not in data and data["slo"] == {"ttft_ms": 200.0}
    with pytest.raises(ValueError, match="needs 'rate'"):
        Workload.model_validate(data)
    errors = FormErrors()
    attach_model_error(fields, errors, "profile 'constant' needs 'rate' (requests/s)")
    assert list(errors) == ["rate"]  # shown where to type, not only at the top


def test_model_defaults_do_not_need_a_valid_model() -> None:
    defaults = model_defaults(Workload)
    assert defaults["profile"] == "synchronous"
    assert defaults["dataset"]["input_tokens"]["mean"] == 128
    assert "duration_s" in defaults and defaults["duration_s"] is None


def test_the_report_file_name_matches_the_report_package() -> None:
    from aifactory.report import REPORT_FILE
    from aifactory.services.server.ingress.web import results

    assert results.REPORT_FILE == REPORT_FILE  # kept apart so the ingress starts faster
