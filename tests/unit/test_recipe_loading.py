"""Recipes: references and files, --set overrides, endpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aifactory.shared.connection import ConnectionFileError, endpoints, parse_connection
from aifactory.shared.recipes import (
    Category,
    FieldError,
    RecipeError,
    deep_merge,
    load_recipe,
    parse_set_options,
    validate_recipe,
)
from tests.recipekit import MINIMAL, ROOT, errors_of, minimal

# -- shipped recipes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "../etc/passwd",
        "inference/../../etc/passwd",
        "inference/..",
        "inference/a..b",
        "/etc/passwd",
        "inference\\vllm",
        "inference/vllm/extra",
        "vllm-single-node",
        "Inference/vllm",
        "inference/VLLM",
        "inference/$(id)",
        "inference/vllm single",
        "inference/.hidden",
        "models/vllm",
        "",
    ],
)
def test_bad_references_are_rejected_before_touching_files(ref: str) -> None:
    missing_root = Path("/nonexistent-aifactory-root")
    with pytest.raises(RecipeError) as exc:
        load_recipe(ref, missing_root)
    assert "recipe" in errors_of(exc)
    assert "no such recipe" not in str(exc.value)


def test_symlink_out_of_the_root_is_rejected(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text((ROOT / "inference" / "simulator.yaml").read_text())
    root = tmp_path / "recipes"
    (root / "inference").mkdir(parents=True)
    (root / "inference" / "evil.yaml").symlink_to(outside)
    with pytest.raises(RecipeError, match="outside the recipes directory"):
        load_recipe("inference/evil", root)


def test_missing_recipe_lists_the_category(tmp_path: Path) -> None:
    with pytest.raises(RecipeError) as exc:
        load_recipe("inference/vllm-singel-node", ROOT)
    assert "available inference recipes: inference/ollama" in str(exc.value)
    assert "inference/vllm-single-node" in str(exc.value)
    with pytest.raises(RecipeError, match="available storage recipes: none"):
        load_recipe("storage/minio", tmp_path)


def test_file_name_must_match_name_and_category(tmp_path: Path) -> None:
    (tmp_path / "vector-db").mkdir()
    text = (ROOT / "inference" / "simulator.yaml").read_text()
    (tmp_path / "vector-db" / "sim.yaml").write_text(text)
    with pytest.raises(RecipeError) as exc:
        load_recipe("vector-db/sim", tmp_path)
    assert set(errors_of(exc)) == {"name", "category"}


def test_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "client").mkdir()
    (tmp_path / "client" / "x.yaml").write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="must be a YAML mapping"):
        load_recipe("client/x", tmp_path)


# -- overrides ---------------------------------------------------------------------------


def test_parse_set_options_types() -> None:
    parsed = parse_set_options(
        [
            "resources.gpu=4",
            "distributed.ray=true",
            "extra_args=[--max-model-len, 4096]",
            "resources.account=",
            "resources.time_limit=1:30:00",
            "environment.MY_VAR=a=b",
        ]
    )
    assert parsed == {
        "resources": {"gpu": 4, "account": None, "time_limit": "1:30:00"},
        "distributed": {"ray": True},
        "extra_args": ["--max-model-len", 4096],
        "environment": {"MY_VAR": "a=b"},
    }


@pytest.mark.parametrize(
    ("items", "needle"),
    [
        (["resources.gpu"], "expected KEY=VALUE"),
        (["resources..gpu=1"], "invalid key segment ''"),
        (["resources.$(id)=1"], "invalid key segment '$(id)'"),
        (["a.b=1", "a=2"], "already has sub-keys"),
        (["a=1", "a.b=2"], "a was already set"),
        (["x='unterminated"], "invalid YAML"),
    ],
)
def test_parse_set_options_errors(items: list[str], needle: str) -> None:
    with pytest.raises(RecipeError) as exc:
        parse_set_options(items)
    assert needle in str(exc.value)
    assert exc.value.errors[0].path.startswith("--set ")


def test_deep_merge_merges_mappings_and_replaces_lists() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    merged = deep_merge(base, {"a": {"c": [3]}, "e": {"f": 1}})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": 1, "e": {"f": 1}}
    merged["a"]["c"].append(4)
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}


def test_overrides_are_validated_after_merge() -> None:
    recipe = load_recipe("inference/vllm-single-node", ROOT, parse_set_options(["resources.gpu=4"]))
    assert recipe.resources.gpu == 4 and recipe.resources.gres == "gpu:4"
    assert recipe.resources.cpus_per_task == 8  # untouched siblings survive the merge
    with pytest.raises(RecipeError) as exc:
        load_recipe("inference/vllm-single-node", ROOT, parse_set_options(["resources.gpu=-1"]))
    assert "resources.gpu" in errors_of(exc)


def test_override_keys_must_be_strings() -> None:
    with pytest.raises(RecipeError, match="keys must be strings"):
        load_recipe("inference/simulator", ROOT, {"resources": {1: 2}})


def test_recipe_is_frozen() -> None:
    recipe = load_recipe("inference/simulator", ROOT)
    with pytest.raises(ValueError, match="frozen"):
        recipe.resources.gpu = 8  # type: ignore[misc]


# -- endpoints: from the job's connection file ---------------------------------------------


def connection(*replicas: tuple[int, str, int]) -> str:
    return json.dumps(
        {
            "job_id": "42",
            "host": replicas[0][1],
            "pid": 7,
            "started": "2026-01-01T00:00:00Z",
            "ports": {"http": replicas[0][2]},
            "replicas": [{"index": i, "host": h, "port": p} for i, h, p in replicas],
        }
    )


def test_endpoints_come_from_the_ports_the_job_chose() -> None:
    conn = parse_connection(connection((0, "gpu01", 8000), (1, "gpu01", 8003), (2, "gpu02", 8000)))
    eps = endpoints(conn, lambda node: node)
    assert [(e.host, e.port, e.url, e.replica) for e in eps] == [
        ("gpu01", 8000, "http://gpu01:8000", 0),
        ("gpu01", 8003, "http://gpu01:8003", 1),
        ("gpu02", 8000, "http://gpu02:8000", 2),
    ]
    single = load_recipe("inference/vllm-single-node", ROOT)
    assert single.health_url(eps[0]) == "http://gpu01:8000/health"
    local = endpoints(conn, lambda node: "127.0.0.1")
    assert {e.host for e in local} == {"127.0.0.1"}
    assert endpoints(parse_connection(connection((0, "::1", 9001))), str)[0].url == (
        "http://[::1]:9001"
    )


@pytest.mark.parametrize(
    "text",
    ["", "{", '{"job_id": "1"}', connection((0, "h", 0)), connection((0, "", 80))],
)
def test_a_bad_connection_file_is_an_error_naming_it(text: str) -> None:
    with pytest.raises(ConnectionFileError, match=r"connection\.json"):
        parse_connection(text)


def test_main_port_is_http_else_the_first() -> None:
    recipe = validate_recipe({**MINIMAL, "ports": {"grpc": 9001, "metrics": 9002}})
    assert (recipe.main_port, recipe.main_port_name) == (9001, "grpc")


def test_default_template_by_category() -> None:
    assert validate_recipe(MINIMAL).template_name == "inference"
    data = minimal(category="vector-db")
    assert validate_recipe(data).template_name == "service"
    assert Category("storage") is Category.STORAGE


def test_recipe_error_str_is_readable() -> None:
    err = RecipeError([FieldError(path="a.b", reason="bad"), FieldError(path="", reason="worse")])
    assert str(err) == "invalid recipe:\n  a.b: bad\n  worse"
    assert str(RecipeError([FieldError(path="x", reason="y")])) == "x: y"
