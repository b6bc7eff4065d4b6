"""The experiment file: a service (recipe + overrides), workloads, SLOs, teardown policy.

Workloads are validated with the load generator's own ``BenchConfig`` when the file is
loaded, so a typo in the third workload is reported as ``workloads[2].rate`` before anything
is deployed — not after ten minutes of waiting for a GPU node.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from aifactory.shared.bus import describe_validation_error
from aifactory.shared.messages.deploy import RECIPE_REF_PATTERN, RecipeOverrides
from aifactory.shared.strict import StrictModel
from aifactory.shared.workload import SloConfig, Workload

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ExperimentError(ValueError):
    """The experiment file is unusable; the message names the field."""


class Teardown(StrEnum):
    ALWAYS = "always"
    ON_SUCCESS = "on_success"
    NEVER = "never"


class ServiceSpec(StrictModel):
    recipe: str = Field(pattern=RECIPE_REF_PATTERN)
    overrides: RecipeOverrides = Field(default_factory=dict)


class WorkloadSpec(Workload):
    """A named workload; its target is the experiment's deployed service."""

    name: str = Field(pattern=NAME_PATTERN)


class Timeouts(StrictModel):
    ready_s: float = Field(default=900.0, gt=0)
    benchmark_s: float = Field(default=6 * 3600.0, gt=0)
    teardown_s: float = Field(default=120.0, gt=0)
    #: How long to wait for an ended job's end of output on the logs stream.
    logs_s: float = Field(default=60.0, gt=0)


class ExperimentSpec(StrictModel):
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

    def workload_body(self, workload: WorkloadSpec) -> Workload:
        """The ``workload`` of the ``bench.requested`` command for ``workload``."""
        fields = {k: v for k, v in dict(workload).items() if k != "name"}
        if "slo" not in workload.model_fields_set and self.slo is not None:
            fields["slo"] = self.slo
        return Workload.model_validate(fields)


#: What replaces an API key in the copy of the experiment file kept with the results: a
#: word that reads the same in every YAML quoting style (``*`` would start an alias).
REDACTED = "redacted-api-key"


def public_source(text: str, spec: ExperimentSpec) -> str:
    """The experiment file as the user wrote it (comments kept), every API key replaced.

    The copy goes into the report folder, which is shared and archived; the key stays in
    the user's own file. A key the text does not hold verbatim (written with YAML escapes)
    cannot be replaced there: then the parsed spec is written instead, its keys masked.
    """
    keys = {w.api_key.get_secret_value() for w in spec.workloads if w.api_key is not None}
    masked = text
    for key in keys:
        masked = masked.replace(key, REDACTED)
    try:
        reparsed = ExperimentSpec.model_validate(yaml.safe_load(masked))
    except (yaml.YAMLError, ValidationError):
        reparsed = None
    kept = (
        {w.api_key.get_secret_value() for w in reparsed.workloads if w.api_key is not None}
        if reparsed is not None
        else keys
    )
    if kept & keys:
        return spec.model_dump_json(indent=2)  # WireSecret: "**********" outside the bus
    return masked


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
    return spec
