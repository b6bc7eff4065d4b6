"""The one strict base for everything a user or another process hands us, and secrets."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer, SecretStr, SerializationInfo


class StrictModel(BaseModel):
    """Unknown keys are errors (a typo must not fall back to a default), values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: Serialization context of everything that goes on the bus: secrets travel (only) there.
WIRE: dict[str, bool] = {"wire": True}


def _dump_secret(value: SecretStr, info: SerializationInfo) -> str:
    if info.context and info.context.get("wire"):
        return value.get_secret_value()
    return str(value)  # "**********"


#: A secret that must reach another process (the target's API key): revealed only when a
#: model is dumped with the :data:`WIRE` context, masked in every other dump (result files,
#: registry records, API answers, logs).
WireSecret = Annotated[SecretStr, PlainSerializer(_dump_secret, when_used="json")]
