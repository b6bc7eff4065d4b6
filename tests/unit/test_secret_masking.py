"""Secrets that reach a file or another consumer must arrive masked.

The end-to-end proof is ``tests/integration/test_secret_sentinel.py``; these pin each fix
to its rule so a regression names the place it broke.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from aifactory.experiment.spec import REDACTED, ExperimentSpec, public_source
from aifactory.shared.credentials import credentials_path, ensure_credentials, write_private
from aifactory.shared.executors.base import submit_environment
from aifactory.shared.results import BenchSummary
from aifactory.shared.states import BenchState
from aifactory.shared.strict import WIRE
from aifactory.shared.workload import BenchConfig

KEY = "sk-live-0123456789abcdef"

SOURCE = """\
# my experiment: keep this comment
name: e
service: {{recipe: inference/simulator}}
workloads:
  - name: a
    requests: 1
    api_key: {key}
  - name: b
    requests: 1
"""


def _spec(text: str) -> ExperimentSpec:
    return ExperimentSpec.model_validate(yaml.safe_load(text))


@pytest.mark.parametrize("written", [KEY, f'"{KEY}"', f"'{KEY}'"])
def test_the_results_copy_of_the_experiment_file_has_no_key(written: str) -> None:
    text = SOURCE.format(key=written)
    copy = public_source(text, _spec(text))
    assert KEY not in copy
    assert copy.startswith("# my experiment: keep this comment")
    masked = _spec(copy).workloads[0].api_key
    assert masked is not None and masked.get_secret_value() == REDACTED


def test_a_key_written_with_escapes_falls_back_to_the_masked_spec() -> None:
    escaped = "".join(f"\\x{ord(c):02x}" for c in KEY)
    text = SOURCE.format(key=f'"{escaped}"')
    spec = _spec(text)
    assert spec.workloads[0].api_key is not None
    assert spec.workloads[0].api_key.get_secret_value() == KEY
    copy = public_source(text, spec)
    assert KEY not in copy and escaped not in copy
    assert '"api_key": "**********"' in copy


def test_a_file_without_keys_is_copied_as_written() -> None:
    text = SOURCE.format(key="unused").replace("    api_key: unused\n", "")
    assert public_source(text, _spec(text)) == text


def test_bench_completed_summary_masks_the_key_on_the_bus() -> None:
    config = BenchConfig(target="http://h:1", api_key=KEY, requests=1)
    now = datetime.now(UTC)
    summary = BenchSummary(
        state=BenchState.COMPLETED,
        target=config.target,
        backend=config.backend,
        model=None,
        config=config,
        started_at=now,
        finished_at=now,
        runs=[],
    )
    assert KEY not in summary.model_dump_json(context=WIRE)
    assert KEY in config.model_dump_json(context=WIRE)  # the config itself still travels


def test_credentials_from_before_the_store_key_get_one_and_keep_the_rest(tmp_path: Path) -> None:
    old = '{"nats_user": "aif-1", "nats_password": "pw-0123456789abcdef", "api_token": "tok"}'
    write_private(credentials_path(tmp_path), old)
    upgraded = ensure_credentials(tmp_path)
    assert upgraded.store_key is not None and len(upgraded.store_key.get_secret_value()) >= 32
    assert upgraded.api_token.get_secret_value() == "tok"
    assert upgraded.nats_password.get_secret_value() == "pw-0123456789abcdef"
    assert ensure_credentials(tmp_path) == upgraded  # persisted (0600), not made again
    assert credentials_path(tmp_path).stat().st_mode & 0o777 == 0o600
    assert upgraded.store_key.get_secret_value() not in repr(upgraded)  # SecretStr


def test_jobs_are_submitted_without_the_stacks_own_secrets() -> None:
    environ = {
        "AIFACTORY_API_TOKEN": "t",
        "aifactory_nats_password": "p",  # settings read names in any case
        "AIFACTORY_NATS_TOKEN": "n",
        "AIFACTORY_NATS_URL": "nats://h:4222",
        "AIFACTORY_NATS_SECRETS_FILE": "/jobs/x/nats-secrets.json",  # a path, not a secret
        "HF_TOKEN": "a recipe's secrets_env goes through",
        "PATH": "/usr/bin",
    }
    assert submit_environment(environ) == {
        "AIFACTORY_NATS_URL": "nats://h:4222",
        "AIFACTORY_NATS_SECRETS_FILE": "/jobs/x/nats-secrets.json",
        "HF_TOKEN": "a recipe's secrets_env goes through",
        "PATH": "/usr/bin",
    }
