"""Contracts in shared/: state mapping, subjects, message validation, settings sources."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from aifactory.loadgen.remote import protocol
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
    events = set(subjects.JOB.enums["event"])
    for state in JobState:
        assert subjects.job_event(state) in events
        assert subjects.JOB.subject(event=subjects.job_event(state)).startswith("job.")
    assert subjects.job_event(JobState.OUT_OF_MEMORY) == "failed"
    with pytest.raises(ValueError, match="not one of"):
        subjects.JOB.subject(event="exploded")


def test_subject_tokens_reject_wildcards_and_dots() -> None:
    assert subjects.JOB.subject(event="running") == "job.running"
    assert subjects.JOB.filter == "job.*"
    assert subjects.DEADLETTER.subject(subject="deploy.requested") == "deadletter.deploy.requested"
    assert subjects.DEADLETTER.filter == "deadletter.>"
    for bad in ("a.b", "*", ">", "a b", ""):
        with pytest.raises(ValueError, match="subject token"):
            protocol.BENCH_HEARTBEAT.subject(benchmark_id=bad)
    with pytest.raises(ValueError, match="needs parameters"):
        subjects.JOB.subject()


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
    from aifactory.contract import CHANNELS, bus_document

    document = bus_document("nats://127.0.0.1:4222")
    assert document["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert {c.address for c in CHANNELS} == addresses
    schemas = document["components"]["schemas"]
    assert "service_id" in schemas["DeployRequested"]["properties"]
    assert "job_state" in schemas["JobEvent"]["properties"]
    # the summary travels typed: its nested models are in the document too
    assert "runs" in schemas["BenchSummary"]["properties"]
    described = schemas["DeployRequested"]["properties"]["overrides"]
    assert described["description"].startswith("Recipe fields to change")
