"""The shape of the house, checked from the code itself.

- A service is imported only by itself: the CLI, libraries, benchmarks and other services
  import libraries and ``shared`` contracts, never a service.
- ``shared`` (the contracts) imports no service and no library.
- Everything is imported through the one top-level name ``aifactory``.
- A service is a thin adapter: ``services/client`` stays under 1,000 lines; no module of the
  project is over 400 lines.
- No message or registry record carries an untyped ``dict[str, Any]`` payload.
"""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from aifactory.contract import CHANNELS
from aifactory.shared import registry

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("server", "client", "monitor", "logs")
#: The packages of the aifactory namespace that are libraries (importable by anyone).
LIBRARY_PREFIXES = (
    "aifactory.loadgen",
    "aifactory.simulator",
    "aifactory.report",
    "aifactory.logs",
    "aifactory.cli",
    "aifactory.experiment",
    "aifactory.stack",
    "aifactory.contract",
    "aifactory.gc",
)
MAX_MODULE_LINES = 400
MAX_CLIENT_SERVICE_LINES = 1000


def project_files() -> list[Path]:
    """Every Python file of the repository once (not through aifactory/'s symlinks)."""
    out = []
    for path in REPO.rglob("*.py"):
        relative = path.relative_to(REPO)
        top = relative.parts[0]
        if top.startswith(".") or top in {"build", "dist"}:
            continue
        if relative.parts[:2] in {("aifactory", "shared"), ("aifactory", "services")}:
            continue
        out.append(path)
    return out


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


FILES = project_files()


def test_the_walk_sees_the_whole_project() -> None:
    names = {str(p.relative_to(REPO)) for p in FILES}
    assert "shared/subjects.py" in names and "services/server/service.py" in names
    assert "aifactory/loadgen/engine.py" in names and "tests/unit/test_architecture.py" in names


def test_only_a_service_imports_itself() -> None:
    offences = []
    for path in FILES:
        relative = path.relative_to(REPO)
        own = relative.parts[1] if relative.parts[0] == "services" else None
        for line, module in imported_modules(path):
            parts = module.split(".")
            if parts[:2] != ["aifactory", "services"] or len(parts) < 3:
                continue
            if parts[2] != own and relative.parts[0] != "tests":
                offences.append(f"{relative}:{line} imports {module}")
    assert offences == []


def test_shared_imports_no_service_and_no_library() -> None:
    offences = []
    for path in FILES:
        relative = path.relative_to(REPO)
        if relative.parts[0] != "shared":
            continue
        for line, module in imported_modules(path):
            if module.startswith("aifactory.") and not module.startswith("aifactory.shared"):
                offences.append(f"{relative}:{line} imports {module}")
    assert offences == []


def test_everything_is_imported_through_the_one_top_level_name() -> None:
    offences = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in FILES
        for line, module in imported_modules(path)
        if module.split(".")[0] in {"shared", "services"}
    ]
    assert offences == []


def test_libraries_do_not_import_services() -> None:
    offences = []
    for path in FILES:
        relative = path.relative_to(REPO)
        if relative.parts[0] not in {"aifactory", "bench", "perf"}:
            continue
        for line, module in imported_modules(path):
            if module.startswith("aifactory.services"):
                offences.append(f"{relative}:{line} imports {module}")
    assert offences == []


def test_the_client_service_is_a_thin_adapter() -> None:
    lines = sum(len(p.read_text().splitlines()) for p in (REPO / "services/client").rglob("*.py"))
    assert lines <= MAX_CLIENT_SERVICE_LINES


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in FILES
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def _untyped_dicts(model: type[BaseModel], seen: set[type]) -> list[str]:
    if model in seen:
        return []
    seen.add(model)
    found = []
    for name, field in model.model_fields.items():
        for arg in _walk(field.annotation):
            if typing.get_origin(arg) is dict and typing.Any in typing.get_args(arg):
                found.append(f"{model.__name__}.{name}")
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                found += _untyped_dicts(arg, seen)
    return found


def _walk(annotation: object) -> list[object]:
    out = [annotation]
    for arg in typing.get_args(annotation):
        out += _walk(arg)
    return out


@pytest.mark.parametrize(
    "model",
    [
        *(c.model for c in CHANNELS),
        registry.ServiceRecord,
        registry.BenchmarkRecord,
    ],
    ids=lambda m: m.__name__,
)
def test_no_wire_model_has_an_untyped_dict_payload(model: type[BaseModel]) -> None:
    assert _untyped_dicts(model, set()) == []


def test_the_built_wheel_installs_one_top_level_name(tmp_path: Path) -> None:
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("aifactory-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert tops == {"aifactory"}
    assert "aifactory/recipes/inference/simulator.yaml" in names
    assert "aifactory/shared/render/templates/vllm.sh.j2" in names
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    installed = {p.name for p in target.iterdir() if not p.name.endswith(".dist-info")}
    assert installed - {"bin"} == {"aifactory"}
