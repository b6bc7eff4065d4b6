"""The slurm+ssh executor's pure parts: settings, hop parsing, endpoint URLs (no sshd)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aifactory.services.server.tunnels import _port_of, _with_address
from aifactory.shared.executors.base import EXECUTORS, ExecutorError
from aifactory.shared.executors.slurm_ssh import SlurmSshExecutor
from aifactory.shared.executors.ssh_hosts import Hop, SshError, parse_jumps
from aifactory.shared.messages import Endpoint
from aifactory.shared.registry import ServiceRecord, service_urls
from aifactory.shared.settings import Settings
from aifactory.shared.states import ServiceState


def test_ssh_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIFACTORY_EXECUTOR", "slurm+ssh")
    monkeypatch.setenv("AIFACTORY_SSH__HOST", "login01.example.org")
    monkeypatch.setenv("AIFACTORY_SSH__USER", "u100123")
    monkeypatch.setenv("AIFACTORY_SSH__PORT", "8822")
    monkeypatch.setenv("AIFACTORY_SSH__PROXY_JUMP", "me@bastion.example.org:2222")
    monkeypatch.setenv("AIFACTORY_SSH__KEY_FILE", "/home/me/.ssh/id_cluster")
    monkeypatch.setenv("AIFACTORY_WORKER_NATS_URL", "nats://10.1.0.5:4222")
    monkeypatch.setenv("AIFACTORY_JOBS_DIR", "/project/scratch/p200000/u100123/jobs")
    settings = Settings()
    assert (settings.ssh.host, settings.ssh.user, settings.ssh.port) == (
        "login01.example.org",
        "u100123",
        8822,
    )
    assert settings.ssh.key_file == Path("/home/me/.ssh/id_cluster")
    assert settings.ssh.known_hosts == Path.home() / ".ssh" / "known_hosts"
    assert settings.ssh.trust_on_first_use is False
    assert settings.worker_nats_url == "nats://10.1.0.5:4222"
    executor = EXECUTORS.get("slurm+ssh").from_settings(settings)
    assert isinstance(executor, SlurmSshExecutor)
    assert executor.remote_files and executor.has_srun and not executor.runs_jobs_here
    assert executor.ssh.jumps == [Hop("bastion.example.org", 2222, "me")]
    assert executor.ssh.target.label == "[login01.example.org]:8822"


def test_ssh_executor_needs_a_host_and_a_cluster_jobs_dir(tmp_path: Path) -> None:
    with pytest.raises(ExecutorError, match="AIFACTORY_JOBS_DIR"):
        SlurmSshExecutor.from_settings(Settings(state_dir=tmp_path, ssh={"host": "login"}))
    with pytest.raises(ExecutorError, match="AIFACTORY_SSH__HOST"):
        SlurmSshExecutor.from_settings(Settings(state_dir=tmp_path, jobs_dir=Path("/p/jobs")))


def test_ssh_remote_program_paths_are_the_clusters() -> None:
    settings = Settings(jobs_dir=Path("/p/jobs"), ssh={"host": "login"})
    executor = SlurmSshExecutor.from_settings(settings)
    assert executor._program("squeue") == "squeue"  # the login shell's PATH, over there
    with_bin = SlurmSshExecutor(executor.ssh, bin_dir=Path("/opt/slurm/bin"))
    assert with_bin._program("sbatch") == "/opt/slurm/bin/sbatch"


@pytest.mark.parametrize(
    ("text", "hop"),
    [
        ("bastion", Hop("bastion")),
        ("me@bastion:2222", Hop("bastion", 2222, "me")),
        ("[::1]:2200", Hop("::1", 2200)),
        ("me@[fe80::1]", Hop("fe80::1", None, "me")),
        ("a.b@c@host", Hop("host", None, "a.b@c")),
    ],
)
def test_ssh_proxy_jump_hops(text: str, hop: Hop) -> None:
    assert Hop.parse(text) == hop


def test_ssh_proxy_jump_errors_and_chains() -> None:
    for bad in ("me@", "host:abc", "host:0", "[::1]:99999"):
        with pytest.raises(SshError, match="PROXY_JUMP"):
            Hop.parse(bad)
    assert parse_jumps(None) == []
    assert parse_jumps("a, u@b:23") == [Hop("a"), Hop("b", 23, "u")]
    assert Hop("b", 23).label == "[b]:23" and Hop("b").label == Hop("b", 22).label == "b"
    assert (Hop("b").connect_port, Hop("b", 23).connect_port) == ((), 23)


def test_ssh_endpoint_urls_for_here_and_for_the_cluster() -> None:
    plain = Endpoint(host="node12", port=8000, url="http://node12:8000")
    tunnel = plain.model_copy(update={"local_url": "http://127.0.0.1:40123"})
    assert plain.reachable_url == "http://node12:8000"
    assert tunnel.reachable_url == "http://127.0.0.1:40123"
    record = ServiceRecord(
        service_id="s1",
        recipe="inference/simulator",
        request_id="r1",
        job_name="aif-s1",
        executor="slurm+ssh",
        workdir="/p/jobs/s1",
        state=ServiceState.RUNNING,
        endpoints=[tunnel],
    )
    assert service_urls("s1", record) == ["http://127.0.0.1:40123"]
    assert service_urls("s1", record, from_cluster=True) == ["http://node12:8000"]
    assert _with_address("http://node12:8000/v1", ("127.0.0.1", 5)) == "http://127.0.0.1:5/v1"
    assert _with_address("http://n:1", ("::1", 7)) == "http://[::1]:7"
    assert (_port_of("http://127.0.0.1:40123"), _port_of(None)) == (40123, None)
