"""Recipes: references and files, --set overrides, endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

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


# -- endpoints ---------------------------------------------------------------------------


def test_endpoints_single_replicas_multinode() -> None:
    single = load_recipe("inference/vllm-single-node", ROOT)
    [ep] = single.endpoints(["gpu01"])
    assert (ep.host, ep.port, ep.url, ep.replica) == ("gpu01", 8000, "http://gpu01:8000", 0)
    assert single.health_url(ep) == "http://gpu01:8000/health"

    replicas = load_recipe("inference/vllm-replicas", ROOT, {"resources": {"gpu": 8}})
    eps = replicas.endpoints(["gpu01", "gpu02"])
    assert [e.url for e in eps] == [f"http://gpu01:{8000 + i}" for i in range(8)]
    assert [e.replica for e in eps] == list(range(8))

    multi = load_recipe("inference/vllm-multinode", ROOT)
    assert [e.url for e in multi.endpoints(["gpu03", "gpu04"])] == ["http://gpu03:8000"]

    qdrant = load_recipe("vector-db/qdrant", ROOT)
    [ep] = qdrant.endpoints(["cpu01"])
    assert qdrant.health_url(ep) == "http://cpu01:6333/readyz"


def test_endpoints_main_port_and_ipv6() -> None:
    recipe = validate_recipe({**MINIMAL, "ports": {"grpc": 9001, "metrics": 9002}})
    assert recipe.main_port == 9001
    assert recipe.endpoints(["::1"])[0].url == "http://[::1]:9001"
    with pytest.raises(RecipeError):
        recipe.endpoints([])


def test_default_template_by_category() -> None:
    assert validate_recipe(MINIMAL).template_name == "inference"
    data = minimal(category="vector-db")
    assert validate_recipe(data).template_name == "service"
    assert Category("storage") is Category.STORAGE


def test_recipe_error_str_is_readable() -> None:
    err = RecipeError([FieldError(path="a.b", reason="bad"), FieldError(path="", reason="worse")])
    assert str(err) == "invalid recipe:\n  a.b: bad\n  worse"
    assert str(RecipeError([FieldError(path="x", reason="y")])) == "x: y"
