"""How every process of ours authenticates to NATS, from settings: one place, no secrets
in URLs, command lines or logs.

The embedded server requires the user and password ``aifactory up`` generated
(``credentials.json`` in the state directory); a process of the same user picks them up
there when it talks to that server (:func:`aifactory.shared.localstack.local_settings`). A
site server's credentials come from settings: a token, a user and password, a NATS
``.creds`` file, or an aifactory secrets file (what job scripts hand to load workers).
"""

from __future__ import annotations

import json
import ssl
from typing import Any

from aifactory.shared.credentials import CredentialsError, check_private
from aifactory.shared.settings import Settings


def nats_options(settings: Settings) -> dict[str, Any]:
    """nats-py ``connect`` keyword arguments for the configured credentials and TLS."""
    opts: dict[str, Any] = {}
    if settings.nats_secrets_file is not None:
        opts |= _secrets_file(settings)
    if settings.nats_token is not None:
        opts["token"] = settings.nats_token.get_secret_value()
    if settings.nats_user is not None:
        opts["user"] = settings.nats_user
        if settings.nats_password is not None:
            opts["password"] = settings.nats_password.get_secret_value()
    if settings.nats_creds is not None:
        opts["user_credentials"] = str(settings.nats_creds)
    if settings.nats_tls_ca or settings.nats_tls_cert:
        context = ssl.create_default_context(
            cafile=str(settings.nats_tls_ca) if settings.nats_tls_ca else None
        )
        if settings.nats_tls_cert is not None:
            key = str(settings.nats_tls_key) if settings.nats_tls_key else None
            context.load_cert_chain(str(settings.nats_tls_cert), key)
        opts["tls"] = context
    return opts


def _secrets_file(settings: Settings) -> dict[str, Any]:
    path = settings.nats_secrets_file
    assert path is not None
    try:
        check_private(path)
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CredentialsError(f"AIFACTORY_NATS_SECRETS_FILE: {path} does not exist") from exc
    except ValueError as exc:
        raise CredentialsError(f"AIFACTORY_NATS_SECRETS_FILE: {path} is not JSON") from exc
    if not isinstance(data, dict) or not set(data) <= {"user", "password", "token"}:
        raise CredentialsError(
            f"AIFACTORY_NATS_SECRETS_FILE: {path} must hold user and password, or token"
        )
    return {k: str(v) for k, v in data.items()}
