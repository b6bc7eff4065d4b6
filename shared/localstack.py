"""Settings completed from this user's running stack: its URLs and its credentials.

The single-user experience stays "``aifactory up``, then any command": the CLI and the
services read where the stack listens (``stack.json``) and how to authenticate
(``credentials.json``) from the user's own state directory. Anything set explicitly (an
environment variable, the config file) wins; credentials are only ever sent to the stack
they were made for.
"""

from __future__ import annotations

from typing import Any

from aifactory.shared.credentials import load_credentials
from aifactory.shared.settings import Settings
from aifactory.shared.stackfile import StackInfo, read_stack

_EXPLICIT_AUTH = ("nats_token", "nats_user", "nats_creds", "nats_secrets_file")


def local_settings(settings: Settings) -> Settings:
    """``settings`` with the running stack's URL, ports and credentials where left open."""
    stack = read_stack(settings.state_dir)
    changes: dict[str, Any] = {}
    if stack is not None:
        changes |= _stack_urls(settings, stack)
    nats_url = changes.get("nats_url", settings.nats_url)
    credentials = load_credentials(settings.state_dir)
    if credentials is not None and stack is not None and nats_url == stack.nats_url:
        if not any(getattr(settings, name) is not None for name in _EXPLICIT_AUTH):
            changes["nats_user"] = credentials.nats_user
            changes["nats_password"] = credentials.nats_password
        if settings.api_token is None:
            changes["api_token"] = credentials.api_token
    if credentials is not None and stack is None and settings.api_token is None:
        changes["api_token"] = credentials.api_token  # the stack being started uses it
    return settings.model_copy(update=changes) if changes else settings


def _stack_urls(settings: Settings, stack: StackInfo) -> dict[str, Any]:
    explicit = settings.model_fields_set
    out: dict[str, Any] = {}
    if "nats_url" not in explicit:
        out["nats_url"] = stack.nats_url
    ports = {
        "ingress_port": stack.ingress_url,
        "client_port": stack.client_url,
        "monitor_port": stack.monitor_url,
        "logs_port": stack.logs_url,
    }
    for field, url in ports.items():
        if url is not None and field not in explicit:
            out[field] = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    return out
