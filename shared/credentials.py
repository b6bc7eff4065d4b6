"""The stack's secrets, made at first start and kept where only their owner can read them.

On a login node shared by hundreds of users, a bus or an ingress without credentials is a
way to submit jobs (and spend allocation hours) as someone else. ``aifactory up`` therefore
generates, once, in the user's state directory (mode 0700):

- ``credentials.json`` (mode 0600): the NATS user and password of the embedded server, the
  ingress API token, and the key the embedded server encrypts its JetStream store with;
- ``nats.conf`` (mode 0600): the embedded server's configuration with that user and key.

The store is encrypted because commands carry secrets (a benchmark target's API key travels
in ``bench.requested``) and JetStream keeps them on disk for days: encrypted, no plaintext
copy exists outside these two files. Deleting ``credentials.json`` therefore also makes the
old store unreadable; the embedded server says so when it starts.

Services, the CLI and the web page read them from there, so a single user never types them;
they never appear on a command line, in a rendered script or in a log.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError

from aifactory.shared.strict import StrictModel

CREDENTIALS_FILE = "credentials.json"


class CredentialsError(RuntimeError):
    """A credentials file that cannot be used; the message says which and what to do."""


class StackCredentials(StrictModel):
    nats_user: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    nats_password: SecretStr
    api_token: SecretStr
    #: JetStream encryption key of the embedded server; ``None`` in files made before it
    #: existed (:func:`ensure_credentials` adds one, and the server encrypts the old store).
    store_key: SecretStr | None = None

    def dump(self) -> str:
        data = {
            "nats_user": self.nats_user,
            "nats_password": self.nats_password.get_secret_value(),
            "api_token": self.api_token.get_secret_value(),
        }
        if self.store_key is not None:
            data["store_key"] = self.store_key.get_secret_value()
        return json.dumps(data, indent=2)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700: only its owner may list or enter it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_uid == os.getuid():
        path.chmod(0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 (never readable by others, not
    even for an instant: the file is created 0600 before a byte is written)."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def check_private(path: Path) -> None:
    """Refuse a secrets file that others can read or that is not ours."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise CredentialsError(f"{path} is a symbolic link; refusing to read secrets through it")
    if info.st_uid != os.getuid():
        raise CredentialsError(f"{path} belongs to uid {info.st_uid}, not you ({os.getuid()})")
    if info.st_mode & 0o077:
        raise CredentialsError(
            f"{path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run: chmod 600 {path}"
        )


def credentials_path(state_dir: Path) -> Path:
    return state_dir / CREDENTIALS_FILE


def load_credentials(state_dir: Path) -> StackCredentials | None:
    """The stack's credentials, or ``None`` if none were made yet."""
    path = credentials_path(state_dir)
    try:
        check_private(path)
        return StackCredentials.model_validate_json(path.read_text())
    except FileNotFoundError:
        return None
    except ValidationError as exc:
        raise CredentialsError(f"{path} is not a credentials file: {exc}") from exc


def ensure_credentials(state_dir: Path) -> StackCredentials:
    """The stack's credentials, generated at first start (a store key added to older ones)."""
    private_dir(state_dir)
    found = load_credentials(state_dir)
    if found is not None and found.store_key is not None:
        return found
    store_key = SecretStr(secrets.token_urlsafe(32))
    made = (
        found.model_copy(update={"store_key": store_key})
        if found is not None
        else StackCredentials(
            nats_user=f"aif-{os.getuid()}",
            nats_password=SecretStr(secrets.token_urlsafe(32)),
            api_token=SecretStr(secrets.token_urlsafe(32)),
            store_key=store_key,
        )
    )
    write_private(credentials_path(state_dir), made.dump())
    return made
