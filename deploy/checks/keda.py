"""KEDA objects (ScaledObject, TriggerAuthentication): validated against the pydantic models
that cloudcoil-models-keda generates from KEDA's own CRDs, plus a walk that refuses any field
those models do not know (the models themselves ignore unknown fields, as the API server's
structural schema would prune them silently)."""

from __future__ import annotations

import typing
from importlib.metadata import version
from typing import Any

import pydantic
from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication

MODELS: dict[str, type[pydantic.BaseModel]] = {
    "ScaledObject": ScaledObject,
    "TriggerAuthentication": TriggerAuthentication,
}
API_VERSION = "keda.sh/v1alpha1"
# cloudcoil-models-keda's version is KEDA's (2.16.1.0: KEDA 2.16.1's CRDs).
MODELS_VERSION = ".".join(version("cloudcoil.models.keda").split(".")[:3])
# What the RabbitMQ scaler reads from a trigger's metadata (KEDA's documentation); the CRD
# types metadata as a free map, so only this list catches a misspelt key.
RABBITMQ_METADATA = {
    "host",
    "usernameFromEnv",
    "passwordFromEnv",
    "protocol",
    "queueName",
    "mode",
    "value",
    "activationValue",
    "vhostName",
    "hostFromEnv",
    "unsafeSsl",
    "useRegex",
    "operation",
    "excludeUnacknowledged",
    "pageSize",
    "timeout",
}


def _models_in(annotation: Any) -> list[type[pydantic.BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    found: list[type[pydantic.BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def unknown_fields(model: type[pydantic.BaseModel], data: Any, path: str) -> list[str]:
    if not isinstance(data, dict):
        return []
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    problems = []
    for key, value in data.items():
        info = fields.get(key)
        if info is None:
            problems.append(f"{path}.{key}: not a field of {model.__name__}")
            continue
        for sub in _models_in(info.annotation):
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                where = f"{path}.{key}[{i}]" if isinstance(value, list) else f"{path}.{key}"
                problems += unknown_fields(sub, item, where)
    return problems


def validate(doc: dict[str, Any]) -> list[str]:
    kind = doc.get("kind", "")
    if doc.get("apiVersion") != API_VERSION or kind not in MODELS:
        return [f"not a KEDA {API_VERSION} object this check knows: {kind}"]
    model = MODELS[kind]
    problems = unknown_fields(model, doc, kind)
    try:
        model.model_validate(doc)
    except pydantic.ValidationError as exc:
        problems += [
            f"{kind}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        ]
    for trigger in doc.get("spec", {}).get("triggers", []):
        if trigger.get("type") == "rabbitmq":
            extra = set(trigger.get("metadata", {})) - RABBITMQ_METADATA
            problems += [f"rabbitmq trigger: unknown metadata key {k}" for k in sorted(extra)]
            if "@" in trigger.get("metadata", {}).get("host", ""):
                problems.append("rabbitmq trigger: credentials inline in metadata.host")
    return problems
