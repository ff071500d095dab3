"""Which Slack destination a message goes to.

The routing file names routes (usually one per team) and lists the owner ids
and manager ids whose alerts go there; anything unmatched goes to the default
route. An owner match wins over a manager match, so a rep who moved teams can
be pinned without editing the manager's list. Routes name destinations but
never hold secrets: a route's webhook URL is read from the environment, and
its channel (Web API mode) is a plain channel id.

```yaml
default_route: revops
routes:
  revops: {channel: C0REVOPS}
  emea-sales:
    channel: C0EMEA
    owners: ["0055e000001AbCd"]
    managers: ["0055e000009XyZw"]
mentions:            # optional: CRM owner id -> Slack user id, to @-mention the rep
  "0055e000001AbCd": U04ABCDEF
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    model_validator,
)

RouteName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]
DEFAULT_ROUTE = "default"


class RoutingError(ValueError):
    """A routing file that cannot be used, explained for the operator."""


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str | None = Field(default=None, description="Channel id for Web API mode.")
    owners: list[str] = Field(default_factory=list)
    managers: list[str] = Field(default_factory=list)


class Routing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_route: RouteName = DEFAULT_ROUTE
    routes: dict[RouteName, Route] = Field(default_factory=dict)
    mentions: dict[str, str] = Field(default_factory=dict)
    _index: dict[str, dict[str, str]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Routing:
        if self.default_route not in self.routes:
            self.routes[self.default_route] = Route()
        for kind in ("owners", "managers"):
            seen = self._index.setdefault(kind, {})
            for name, route in self.routes.items():
                for person in getattr(route, kind):
                    if person in seen and seen[person] != name:
                        raise ValueError(
                            f"{kind[:-1]} {person!r} is listed in routes {seen[person]!r} "
                            f"and {name!r}"
                        )
                    seen[person] = name
        return self

    def route_for(self, owner_id: str | None, manager_id: str | None = None) -> str:
        owners, managers = self._index["owners"], self._index["managers"]
        if owner_id is not None and owner_id in owners:
            return owners[owner_id]
        if manager_id is not None and manager_id in managers:
            return managers[manager_id]
        return self.default_route

    def mention(self, owner_id: str | None) -> str | None:
        return self.mentions.get(owner_id) if owner_id is not None else None


def single_route(channel: str | None = None) -> Routing:
    """No routing file: everything to one destination."""
    return Routing(routes={DEFAULT_ROUTE: Route(channel=channel)})


def load_routing(path: Path) -> Routing:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RoutingError(f"{path}: cannot read the routing file: {exc}") from exc
    except yaml.YAMLError as exc:
        raise RoutingError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Routing.model_validate(raw or {})
    except ValidationError as exc:
        problems = "\n".join(
            f"  - {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise RoutingError(f"{path}: {exc.error_count()} problem(s):\n{problems}") from None
