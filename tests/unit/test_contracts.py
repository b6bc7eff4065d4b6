"""Contracts in shared/: state mapping, subjects, message validation, settings sources."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from aifactory.shared import subjects
from aifactory.shared.messages import BenchTarget, DeployRequested
from aifactory.shared.settings import Settings
from aifactory.shared.states import JobState, ServiceState, service_state_for


@pytest.mark.parametrize(
    ("job", "healthy", "expected"),
    [
        (JobState.PENDING, False, ServiceState.PENDING),
        (JobState.REQUEUED, False, ServiceState.PENDING),
        (JobState.RUNNING, False, ServiceState.STARTING),
        (JobState.RUNNING, True, ServiceState.RUNNING),
        (JobState.COMPLETING, True, ServiceState.RUNNING),
        (JobState.COMPLETED, True, ServiceState.COMPLETED),
        (JobState.CANCELLED, True, ServiceState.CANCELLED),
        (JobState.TIMEOUT, True, ServiceState.TIMEOUT),
        (JobState.DEADLINE, False, ServiceState.TIMEOUT),
        (JobState.NODE_FAIL, True, ServiceState.FAILED),
        (JobState.OUT_OF_MEMORY, True, ServiceState.FAILED),
        (JobState.PREEMPTED, True, ServiceState.FAILED),
        (JobState.BOOT_FAIL, False, ServiceState.FAILED),
        (JobState.VANISHED, False, ServiceState.FAILED),
    ],
)
def test_every_job_state_maps_to_a_service_state(
    job: JobState, healthy: bool, expected: ServiceState
) -> None:
    assert service_state_for(job, healthy=healthy) is expected


def test_every_job_state_has_a_subject_in_the_catalogue() -> None:
    catalogue = {
        subjects.JOB_PENDING,
        subjects.JOB_RUNNING,
        subjects.JOB_COMPLETED,
        subjects.JOB_FAILED,
        subjects.JOB_CANCELLED,
        subjects.JOB_TIMEOUT,
    }
    for state in JobState:
        assert subjects.job_subject(state) in catalogue
    assert subjects.job_subject(JobState.OUT_OF_MEMORY) == subjects.JOB_FAILED


def test_subject_tokens_reject_wildcards_and_dots() -> None:
    assert subjects.logs("svc1", "stdout") == "logs.svc1.stdout"
    for bad in ("a.b", "*", ">", "a b", ""):
        with pytest.raises(ValueError, match="subject token"):
            subjects.monitor_samples(bad)


def test_messages_reject_unknown_fields_and_bad_ids() -> None:
    with pytest.raises(ValidationError, match="extra"):
        DeployRequested.model_validate({"service_id": "a", "recipe": "inference/x", "surprise": 1})
    with pytest.raises(ValidationError, match="service_id"):
        DeployRequested(service_id="a/../b", recipe="inference/x")
    with pytest.raises(ValidationError, match="recipe"):
        DeployRequested(service_id="a", recipe="../../etc/passwd")
    with pytest.raises(ValidationError, match="exactly one"):
        BenchTarget()
    with pytest.raises(ValidationError, match="schema_version"):
        DeployRequested.model_validate(
            {"service_id": "a", "recipe": "inference/x", "schema_version": 2}
        )


def test_settings_from_yaml_file_and_env_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("executor: slurm\nslurm:\n  partition: gpu\npoll_interval: 5\n")
    monkeypatch.setenv("AIFACTORY_CONFIG", str(config))
    monkeypatch.setenv("AIFACTORY_POLL_INTERVAL", "0.5")
    settings = Settings()
    assert settings.executor == "slurm"
    assert settings.slurm.partition == "gpu"
    assert settings.poll_interval == 0.5  # the environment wins over the file
    config.write_text("pol_interval: 5\n")
    with pytest.raises(ValidationError, match="pol_interval"):
        Settings()


def test_asyncapi_document_covers_every_subject_with_its_schema() -> None:
    from aifactory.shared.catalogue import CATALOGUE, asyncapi_document

    document = asyncapi_document()
    assert document["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in document["channels"].values()}
    for subject in (
        *subjects.COMMAND_SUBJECTS,
        subjects.JOB_SUBMITTED,
        subjects.SERVICE_READY,
        subjects.BENCH_COMPLETED,
    ):
        assert subject in addresses
    assert {c.subject for c in CATALOGUE} <= addresses
    schemas = document["components"]["schemas"]
    assert "service_id" in schemas["DeployRequested"]["properties"]
    assert "job_state" in schemas["JobEvent"]["properties"]
