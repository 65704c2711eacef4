"""The services of a run as the cost engine sees them (from the manifest, completed by usage)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.artifacts import Manifest
from harness.errors import ArtifactError, InputError

BILLING_MODELS = ("instance", "serverless", "usage")
# Roles whose compute is not ours to pay: a stand-in for a paid third-party API is priced per
# call (external:<vendor>), the load generator and the harness are not part of the system.
UNBILLED_ROLES = frozenset({"external", "loadgen", "harness"})
# Backing roles: priced per operation when serverless, attributed by share of operations.
BACKING_ROLES = frozenset({"cache", "database"})


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service: its role, its billing model and what each replica is provisioned with."""

    name: str
    role: str = "app"
    billing: str = "instance"
    cpu: float | None = None  # provisioned vCPU per replica
    memory: float | None = None  # provisioned bytes per replica
    entry: bool = False

    @property
    def billed(self) -> bool:
        return self.role not in UNBILLED_ROLES

    @property
    def backing(self) -> bool:
        return self.role in BACKING_ROLES

    def model(self, override: str | None) -> str:
        """The billing model in force: an override applies to app services, not backing ones."""
        return override if override is not None and not self.backing else self.billing


def check_model(model: str | None) -> None:
    if model is not None and model not in BILLING_MODELS:
        raise InputError(
            f"unknown billing model {model!r}; choose one of {', '.join(BILLING_MODELS)}"
        )


def _optional_number(raw: Mapping[str, Any], key: str, name: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ArtifactError(f"manifest.json: services[{name}].{key} must be a number >= 0")
    return float(value)


def _from_manifest(raw: Mapping[str, Any]) -> ServiceSpec:
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ArtifactError("manifest.json: a service has no name")
    billing = raw.get("billing") or "instance"
    if billing not in BILLING_MODELS:
        raise ArtifactError(
            f"manifest.json: services[{name}].billing {billing!r} is not one of "
            f"{', '.join(BILLING_MODELS)}"
        )
    return ServiceSpec(
        name=name,
        role=str(raw.get("role") or "app"),
        billing=billing,
        cpu=_optional_number(raw, "cpu", name),
        memory=_optional_number(raw, "memory", name),
        entry=bool(raw.get("entry", False)),
    )


def resolve_services(manifest: Manifest, usage: pd.DataFrame) -> dict[str, ServiceSpec]:
    """Manifest services, plus any service seen only in usage (role from usage, billed instance)."""
    specs = {spec.name: spec for spec in map(_from_manifest, manifest.services)}
    if len(usage):
        seen = usage[["service", "role"]].dropna(subset=["service"]).drop_duplicates("service")
        for service, role in zip(seen["service"], seen["role"], strict=True):
            if str(service) not in specs:
                specs[str(service)] = ServiceSpec(
                    str(service), str(role) if pd.notna(role) else "app"
                )
    return specs


def entry_service(specs: Mapping[str, ServiceSpec]) -> str:
    """The service that receives the traffic: flagged entry, else the first app, else the first."""
    for spec in specs.values():
        if spec.entry:
            return spec.name
    for spec in specs.values():
        if spec.role == "app":
            return spec.name
    return next(iter(specs), "app")


def replica_services(usage: pd.DataFrame) -> dict[str, str]:
    """Replica id -> service name, from usage samples (requests carry X-Served-By replica ids)."""
    if not len(usage):
        return {}
    pairs = usage[["replica", "service"]].dropna().drop_duplicates("replica")
    return {str(r): str(s) for r, s in zip(pairs["replica"], pairs["service"], strict=True)}
