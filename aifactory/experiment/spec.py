"""The experiment file: a service (recipe + overrides), workloads, SLOs, teardown policy.

Workloads are validated with the load generator's own ``BenchConfig`` when the file is
loaded, so a typo in the third workload is reported as ``workloads[2].rate`` before anything
is deployed — not after ten minutes of waiting for a GPU node.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aifactory.shared.bus import describe_validation_error
from aifactory.shared.messages.deploy import RECIPE_REF_PATTERN
from aifactory.shared.workload import BenchConfig, SloConfig

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: Placeholder used to validate workloads before the service (and its URL) exists.
_PLACEHOLDER_TARGET = "http://service.invalid:1"


class ExperimentError(ValueError):
    """The experiment file is unusable; the message names the field."""


class Teardown(StrEnum):
    ALWAYS = "always"
    ON_SUCCESS = "on_success"
    NEVER = "never"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceSpec(_Strict):
    recipe: str = Field(pattern=RECIPE_REF_PATTERN)
    overrides: dict[str, Any] = Field(default_factory=dict)


class WorkloadSpec(BaseModel):
    """``name`` plus any ``BenchConfig`` field except ``target`` (the deployed service)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)

    @property
    def fields(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Timeouts(_Strict):
    ready_s: float = Field(default=900.0, gt=0)
    benchmark_s: float = Field(default=6 * 3600.0, gt=0)
    teardown_s: float = Field(default=120.0, gt=0)


class ExperimentSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    service: ServiceSpec
    workloads: list[WorkloadSpec] = Field(min_length=1)
    #: Applied to every workload that does not set its own ``slo``.
    slo: SloConfig | None = None
    teardown: Teardown = Teardown.ALWAYS
    output_dir: Path = Path("results")
    timeouts: Timeouts = Timeouts()

    @model_validator(mode="after")
    def _unique_names(self) -> ExperimentSpec:
        names = [w.name for w in self.workloads]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"workload names must be unique; repeated: {', '.join(duplicates)}")
        return self

    def workload_body(self, workload: WorkloadSpec) -> dict[str, Any]:
        """The ``workload`` of the ``bench.requested`` command for ``workload``."""
        body = workload.fields
        if "slo" not in body and self.slo is not None:
            body["slo"] = self.slo.model_dump(exclude_none=True)
        return body


def load_experiment(path: Path) -> ExperimentSpec:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ExperimentError(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ExperimentError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ExperimentError(f"{path}: expected a mapping at the top level")
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise ExperimentError(f"{path}: {describe_validation_error(exc)}") from exc
    for i, workload in enumerate(spec.workloads):
        body = spec.workload_body(workload)
        if "target" in body:
            raise ExperimentError(
                f"{path}: workloads[{i}].target: not allowed; the target is the deployed service"
            )
        try:
            BenchConfig.model_validate({**body, "target": _PLACEHOLDER_TARGET})
        except ValidationError as exc:
            raise ExperimentError(
                f"{path}: workloads[{i}] ({workload.name}): " + describe_validation_error(exc)
            ) from exc
    return spec
