"""Qdrant's published OpenAPI document as a test oracle (no Qdrant server runs here).

``tests/data/qdrant-openapi.json`` is the part of Qdrant's ``docs/redoc/master/openapi.json``
the backend uses, unchanged (its ``info`` names the commit). OpenAPI 3.0 schemas become
JSON Schema here (``nullable``), and request schemas are made strict (an object's declared
properties only), so a misspelt field in a body we send fails instead of being ignored.
Responses come from the document too: the examples in its description, and instances
assembled from the ``example`` values of its schemas.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

DOC: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "qdrant-openapi.json").read_text()
)
SCHEMAS: dict[str, Any] = DOC["components"]["schemas"]


def _convert(node: Any, *, strict: bool) -> Any:
    if isinstance(node, list):
        return [_convert(x, strict=strict) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _convert(v, strict=strict) for k, v in node.items() if k != "example"}
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        elif not any(k in out for k in ("$ref", "anyOf", "oneOf", "properties")):
            out["type"] = "null"
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    if strict and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def validator(schema: dict[str, Any], *, strict: bool) -> Draft202012Validator:
    components = {"schemas": _convert(SCHEMAS, strict=strict)}
    return Draft202012Validator({**_convert(schema, strict=strict), "components": components})


def operation(path: str, method: str) -> dict[str, Any]:
    return dict(DOC["paths"][path][method])


def request_errors(path: str, method: str, body: Any) -> list[str]:
    """Why ``body`` is not a valid request body of the operation (empty: it is)."""
    schema = operation(path, method)["requestBody"]["content"]["application/json"]["schema"]
    return [e.message for e in validator(schema, strict=True).iter_errors(body)]


def response_errors(path: str, method: str, body: Any, status: str = "200") -> list[str]:
    schema = operation(path, method)["responses"][status]["content"]["application/json"]["schema"]
    return [e.message for e in validator(schema, strict=False).iter_errors(body)]


def description_examples() -> list[Any]:
    """The "Expected response" JSON examples of the document's description, in order."""
    text = DOC["info"]["description"]
    return [json.loads(b) for b in re.findall(r"Expected response:\n```\n(.*?)\n```", text, re.S)]


def example_of(name: str) -> dict[str, Any]:
    """An instance of schema ``name`` built from its required properties' ``example``s."""
    schema = SCHEMAS[name]
    out: dict[str, Any] = {}
    for prop in schema.get("required", []):
        spec = copy.deepcopy(schema["properties"][prop])
        while "$ref" in spec or "anyOf" in spec:
            spec = SCHEMAS[spec["$ref"].split("/")[-1]] if "$ref" in spec else spec["anyOf"][0]
        out[prop] = spec["example"]
    return out
