"""Recipes: the shipped files, the schema's error messages, references, overrides, endpoints."""

from __future__ import annotations

from typing import Any

import pytest

from aifactory.shared.recipes import (
    Recipe,
    RecipeError,
    deep_merge,
    list_recipes,
    load_recipe,
    validate_recipe,
)
from aifactory.shared.recipes.placeholders import placeholders, substitute
from aifactory.shared.recipes.yamlio import RecipeYamlError, load_yaml
from tests.recipekit import MINIMAL, REPO, ROOT, SHIPPED, errors_of, minimal

# -- shipped recipes ---------------------------------------------------------------------


def test_list_recipes_finds_exactly_the_shipped_ones() -> None:
    refs = list_recipes(ROOT)
    assert {r.ref for r in refs} == SHIPPED
    assert all(r.path.is_file() and r.path.is_relative_to(ROOT) for r in refs)


@pytest.mark.parametrize("ref", sorted(SHIPPED))
def test_shipped_recipe_loads_and_round_trips(ref: str) -> None:
    recipe = load_recipe(ref, ROOT)
    assert recipe.ref == ref
    # The server stores model_dump(mode="json") and validates it again later.
    assert Recipe.model_validate(recipe.model_dump(mode="json")) == recipe
    if recipe.container_def is not None:
        assert (REPO / recipe.container_def).is_file()
    if recipe.image is not None:
        assert not recipe.image.endswith(":latest"), "pin image versions for reproducibility"


def test_shipped_recipe_facts() -> None:
    single = load_recipe("inference/vllm-single-node", ROOT)
    assert (single.template_name, single.resources.gpu, single.main_port) == (
        "vllm",
        1,
        8000,
    )
    assert single.resources.partition == "gpu" and single.health.path == "/health"
    assert single.image is not None and single.image.startswith("docker://vllm/vllm-openai:")
    replicas = load_recipe("inference/vllm-replicas", ROOT)
    assert replicas.replica_count == 4 and replicas.replica_ports() == [8000, 8001, 8002, 8003]
    multi = load_recipe("inference/vllm-multinode", ROOT)
    assert multi.resources.nodes == 2 and multi.distributed.ray
    ollama = load_recipe("inference/ollama", ROOT)
    assert (ollama.main_port, ollama.health.path) == (11434, "/api/tags")
    assert "OLLAMA_HOST" in ollama.environment
    sim = load_recipe("inference/simulator", ROOT)
    assert sim.runtime.value == "native" and sim.resources.gpu == 0
    assert sim.resources.partition == "cpu" and sim.command is not None
    assert sim.command[:2] == ["aifactory", "simulate"]
    qdrant = load_recipe("vector-db/qdrant", ROOT)
    assert (qdrant.main_port, qdrant.health.path) == (6333, "/readyz")
    assert qdrant.template_name == "service"
    chroma = load_recipe("vector-db/chroma", ROOT)
    assert chroma.health.path == "/api/v2/heartbeat" and chroma.runtime.value == "native"


# -- error messages ----------------------------------------------------------------------


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(RecipeError) as exc:
        load_recipe("inference/vllm-single-node", ROOT, {"resources": {"gpus": 2}})
    reason = errors_of(exc)["resources.gpus"]
    assert reason.startswith("unknown key; valid keys: nodes, cpus_per_task, memory, time_limit")
    assert "resources.gpus: unknown key" in str(exc.value)


def test_unknown_key_in_list_item_and_top_level() -> None:
    bad = minimal(apptainer={}, wat=1)
    bad["runtime"] = "apptainer"
    bad["image"] = "docker://x/y:1"
    bad["apptainer"] = {"binds": [{"source": "/a", "target": "/b", "sorce": "/c"}]}
    with pytest.raises(RecipeError) as exc:
        validate_recipe(bad)
    errors = errors_of(exc)
    assert errors["apptainer.binds[0].sorce"].endswith("source, target, read_only, create")
    assert "valid keys: name, category, description" in errors["wat"]


def test_type_errors_name_the_field_path() -> None:
    with pytest.raises(RecipeError) as exc:
        load_recipe("inference/vllm-single-node", ROOT, {"resources": {"gpu": "many"}})
    assert errors_of(exc)["resources.gpu"].startswith("Input should be a valid integer")
    assert isinstance(exc.value, ValueError)
    assert str(exc.value).startswith("recipe inference/vllm-single-node is invalid:\n")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("resources.partition", "gpu\n#SBATCH --wrap=id"),
        ("resources.account", "acct;id"),
        ("resources.qos", "$(touch /tmp/pwned)"),
        ("resources.gpu_type", "a100 --wrap=id"),
        ("resources.memory", "16G --x"),
        ("resources.time_limit", "1:00:00 && id"),
        ("name", "vllm`id`"),
        ("version", "1 ; id"),
        ("image", "docker://x/y:1 --bind /:/host"),
        ("health.path", "health"),
        ("container_def", "containers/../../etc/passwd.def"),
    ],
)
def test_hostile_values_in_unquotable_fields_are_rejected(path: str, value: str) -> None:
    section, _, key = path.rpartition(".")
    override: dict[str, Any] = {section: {key: value}} if section else {key: value}
    with pytest.raises(RecipeError) as exc:
        validate_recipe(deep_merge(MINIMAL, override))
    assert path in errors_of(exc)


@pytest.mark.parametrize("key", ["A B", "A;B", "$(id)", "1ABC", "A-B", "A\nB", "`id`"])
def test_hostile_env_keys_are_rejected(key: str) -> None:
    with pytest.raises(RecipeError) as exc:
        validate_recipe(minimal(environment={key: "x"}))
    assert errors_of(exc)[f"environment.{key}"].startswith("invalid key:")


@pytest.mark.parametrize("key", ["HF_TOKEN", "OPENAI_API_KEY", "DB_PASSWORD", "AWS_SECRET_KEY"])
def test_secret_looking_env_keys_must_use_secrets_env(key: str) -> None:
    with pytest.raises(RecipeError) as exc:
        validate_recipe(minimal(environment={key: "hunter2"}))
    assert "secrets_env" in errors_of(exc)[f"environment.{key}"]
    assert "hunter2" not in str(exc.value)


def test_non_secret_names_that_mention_tokens_are_fine() -> None:
    recipe = validate_recipe(minimal(environment={"TOKENIZERS_PARALLELISM": "false"}))
    assert recipe.environment == {"TOKENIZERS_PARALLELISM": "false"}


def test_nul_bytes_are_rejected_in_free_text() -> None:
    with pytest.raises(RecipeError) as exc:
        validate_recipe(minimal(extra_args=["a\x00b"]))
    assert "extra_args[0]" in errors_of(exc)


@pytest.mark.parametrize("value", ["60", 60, "1:30:00", "2-00", "2-12:30", "1-00:00:00", "90:00"])
def test_time_limit_accepts_slurm_formats(value: object) -> None:
    recipe = validate_recipe(minimal(resources={"time_limit": value}))
    assert recipe.resources.time_limit == str(value)


@pytest.mark.parametrize("value", ["0", "00:00:00", "1h", "1:00:00:00", "-1", True, "1-"])
def test_time_limit_rejects_others(value: object) -> None:
    with pytest.raises(RecipeError) as exc:
        validate_recipe(minimal(resources={"time_limit": value}))
    assert "resources.time_limit" in errors_of(exc)


def test_yaml_times_and_words_stay_strings() -> None:
    # YAML 1.1 (PyYAML's default) would turn 1:30:00 into 5400 and `no` into False.
    assert load_yaml("t: 1:30:00\nw: no\nb: true\nn: 4\nl: [a, 2]") == {
        "t": "1:30:00",
        "w": "no",
        "b": True,
        "n": 4,
        "l": ["a", 2],
    }
    with pytest.raises(RecipeYamlError, match="appears twice"):
        load_yaml("a: 1\na: 2\n")
    with pytest.raises(RecipeYamlError, match="line 1"):
        load_yaml("a: [1, 2")


def test_numbers_become_strings_in_text_fields() -> None:
    recipe = validate_recipe(minimal(extra_args=["--max-model-len", 4096], version=1.0))
    assert recipe.extra_args == ["--max-model-len", "4096"] and recipe.version == "1.0"


# -- cross-field rules -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "path", "needle"),
    [
        ({"template": "vllm", "command": None}, "model", "required by template vllm"),
        ({"template": "vllm", "model": "m"}, "command", "not used by template vllm"),
        ({"runtime": "apptainer"}, "image", "required when runtime is apptainer"),
        ({"image": "docker://a/b:1"}, "image", "only used with runtime apptainer"),
        ({"command": None}, "command", "required with runtime native"),
        ({"resources": {"nodes": 2}}, "resources.nodes", "use vllm-multinode"),
        ({"distributed": {"ray": True}}, "distributed.ray", "vllm-multinode"),
        ({"replicas": {"base_port": 8000}}, "replicas", "only used by template vllm-replicas"),
        ({"ports": {"http": 9000, "grpc": 9000}}, "ports.grpc", "already used by ports.http"),
        ({"distributed": {"tensor_parallel": 2}}, "distributed", "needs more GPUs"),
        (
            {"secrets_env": ["HF_TOKEN"], "environment": {"HF_TOKEN": "x"}},
            "environment.HF_TOKEN",
            "",
        ),
        ({"ports": {}}, "ports", "at least 1"),
    ],
)
def test_cross_field_rules(changes: dict[str, Any], path: str, needle: str) -> None:
    data = deep_merge(MINIMAL, changes)
    for key, value in changes.items():
        if value is None or key == "ports":
            data[key] = value
    with pytest.raises(RecipeError) as exc:
        validate_recipe(data)
    assert needle in errors_of(exc)[path]


def test_replicas_need_a_multiple_of_gpu_per_replica() -> None:
    overrides = {"resources": {"gpu": 3}, "replicas": {"gpu_per_replica": 2}}
    with pytest.raises(RecipeError) as exc:
        load_recipe("inference/vllm-replicas", ROOT, overrides)
    assert "multiple of replicas.gpu_per_replica (2)" in errors_of(exc)["resources.gpu"]


def test_multinode_needs_two_nodes_and_ray() -> None:
    overrides = {"resources": {"nodes": 1}, "distributed": {"ray": False}}
    with pytest.raises(RecipeError) as exc:
        load_recipe("inference/vllm-multinode", ROOT, overrides)
    assert set(errors_of(exc)) >= {"resources.nodes", "distributed.ray"}


def test_unknown_placeholder_is_a_field_error() -> None:
    with pytest.raises(RecipeError) as exc:
        validate_recipe(minimal(command=["server", "--port", "{prot}"]))
    reason = errors_of(exc)["command[2]"]
    assert reason.startswith("unknown placeholder {prot}; valid placeholders: {port}")
    assert "{ports.http}" in reason and "{model}" not in reason
    with pytest.raises(RecipeError) as exc:
        validate_recipe(minimal(environment={"X": "{model}"}))
    assert "environment.X" in errors_of(exc)


def test_placeholders_leave_json_alone_and_support_escapes() -> None:
    text = '{"temperature": 0.5} {port} {{port}} {ports.http}'
    assert placeholders(text) == ["port", "ports.http"]
    assert substitute(text, {"port": "1", "ports.http": "2"}) == '{"temperature": 0.5} 1 {port} 2'
    validate_recipe(minimal(extra_args=['{"a": {"b": 1}}']))


# -- references --------------------------------------------------------------------------
