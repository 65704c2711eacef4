"""Architecture variants of one scenario, run one after the other and compared side by side.

```yaml
variants:
  cache-off: {shop: {env: {SHOP_CACHE: "off"}}}
  cache-on:  {shop: {env: {SHOP_CACHE: "on"}, replicas: 2}}
```
Each variant patches services of the target (environment merged, other fields replaced) and
runs as its own run directory ``RUN_DIR/<variant>/``; its request records carry the variant name.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from harness.scenario.values import Count, Memory, Positive, Problem, StrictModel, StrValue, show

if TYPE_CHECKING:
    from harness.scenario.target import Service as ServiceModel

_VARIANT = re.compile(r"[A-Za-z0-9._-]+")


class ServicePatch(StrictModel):
    """What a variant changes in one service."""

    env: dict[str, StrValue] = {}
    replicas: Count | None = None
    cpu: Positive | None = None
    memory: Memory | None = None
    billing: Literal["instance", "serverless", "usage"] | None = None


Variants = dict[str, dict[str, ServicePatch]]


def variant_problems(variants: Variants, services: list[str]) -> list[Problem]:
    problems: list[Problem] = []
    for name, patches in variants.items():
        if not _VARIANT.fullmatch(name):
            problems.append((("variants", name),
                             f"variant name must match [A-Za-z0-9._-]+, got {show(name)}"))
        for service in patches:
            if service not in services:
                known = ", ".join(services)
                problems.append((("variants", name, service),
                                 f"{show(service)} names no service (known: {known})"))
    return problems


def patched(service: ServiceModel, patch: ServicePatch) -> ServiceModel:
    """A copy of ``service`` with the variant's changes (environment merged)."""
    update: dict[str, Any] = {"env": {**service.env, **patch.env}}
    for key in ("replicas", "cpu", "memory", "billing"):
        value = getattr(patch, key)
        if value is not None:
            update[key] = value
    return service.model_copy(update=update)
