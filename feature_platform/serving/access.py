"""Authentication (bearer tokens from a secrets file) and authorization (Feast's permission model) for
the HTTP feature server.

The tokens file maps each caller to its token and roles (YAML)::

    churn-service:
      token_sha256: 9f86d0...   # sha256 of the token (or `token: <plain>`; prefer the digest)
      roles: [churn_model]

`AccessSpec`s (the feature repository, e.g. examples/chat_activity/access.py) become Feast `Permission`s with role-based policies,
and Feast's `enforce_policy` decides: a caller may read a feature view or service, or push to a view,
only when a permission grants one of its roles that action on that resource. Tokens are compared by
digest in constant time and never logged; a refusal is logged with the caller, path and resource.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from feast import FeatureService, FeatureView
from feast.errors import FeastPermissionError
from feast.permissions.action import AuthzedAction
from feast.permissions.enforcer import enforce_policy
from feast.permissions.permission import Permission
from feast.permissions.policy import RoleBasedPolicy
from feast.permissions.user import User

from feature_platform import request_time
from feature_platform.derive.feast_objects import feast_feature_service, feast_feature_view
from feature_platform.errors import FeaturePlatformError
from feature_platform.features import references
from feature_platform.repo import Repository, load_repository
from feature_platform.spec import AccessSpec

log = logging.getLogger("feature_platform.serving.access")
READ = [AuthzedAction.READ_ONLINE]
PUSH = [AuthzedAction.WRITE_ONLINE, AuthzedAction.WRITE_OFFLINE]  # a push lands online and offline


class AuthenticationError(FeaturePlatformError):
    """No bearer token, or one the server does not know (HTTP 401)."""


class AccessDeniedError(FeaturePlatformError):
    """An authenticated caller without the permission it asked for (HTTP 403)."""


class TokensFileError(FeaturePlatformError, ValueError):
    """A tokens file that cannot be read or does not have the documented shape."""


@dataclass(frozen=True)
class Caller:
    name: str
    roles: tuple[str, ...]


class Tokens:
    """Token digests -> callers, loaded from the secrets file."""

    def __init__(self, callers: dict[bytes, Caller]):
        self._callers = callers

    @classmethod
    def load(cls, path: Path) -> Tokens:
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise TokensFileError(f"tokens file {path}: cannot be read ({type(exc).__name__})") from None
        if not isinstance(raw, dict) or not raw:
            raise TokensFileError(f"tokens file {path}: expected a mapping of caller name -> token and roles")
        callers = {}
        for name, entry in raw.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("roles"), list) or not entry["roles"]:
                raise TokensFileError(f"tokens file {path}: caller {name!r} needs a non-empty list of roles")
            digest = entry.get("token_sha256")
            if digest is None and isinstance(entry.get("token"), str) and entry["token"]:
                digest = _sha256(entry["token"]).hex()
            if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise TokensFileError(f"tokens file {path}: caller {name!r} needs `token` or a hex `token_sha256`")
            callers[bytes.fromhex(digest)] = Caller(str(name), tuple(str(r) for r in entry["roles"]))
        return cls(callers)

    def caller(self, authorization: str | None) -> Caller:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("missing bearer token (send 'Authorization: Bearer <token>')")
        digest = _sha256(token.strip())
        for known, caller in self._callers.items():  # constant-time per comparison
            if hmac.compare_digest(known, digest):
                return caller
        raise AuthenticationError("unknown bearer token")


def _sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def feast_permissions(repo: Repository, specs: dict[str, AccessSpec] | None = None) -> list[Permission]:
    """The `AccessSpec`s (default: the repository's) as Feast permissions: one per spec and resource type,
    names matched exactly."""
    out = []
    for spec in (specs or repo.access).values():
        actions = [*(READ if "read" in spec.actions else []), *(PUSH if "push" in spec.actions else [])]
        policy = RoleBasedPolicy(roles=list(spec.roles))
        for kind, names in ((FeatureView, spec.feature_views), (FeatureService, spec.feature_services)):
            if names:
                out.append(Permission(name=f"{spec.name}_{kind.__name__.lower()}", types=[kind],
                                      name_patterns=[re.escape(n) for n in names], actions=actions, policy=policy))
    return out


def check_access_specs(repo: Repository, specs: dict[str, AccessSpec] | None = None) -> None:
    """Every granted view and service exists (a typo would silently grant nothing)."""
    services = repo.feature_services
    for spec in (specs or repo.access).values():
        for view in spec.feature_views:
            repo.view(view)
        unknown = [s for s in spec.feature_services if s not in services]
        if unknown:
            raise FeaturePlatformError(f"access {spec.name!r} grants unknown feature service(s) {unknown}")


class Authorizer:
    """Decides per request; `None` tokens = authentication off (the loopback default)."""

    def __init__(self, settings, tokens: Tokens | None):
        self.settings = settings
        self.tokens = tokens
        self.repo = load_repository(settings.repo_location)
        check_access_specs(self.repo)
        self.permissions = feast_permissions(self.repo)

    def authenticate(self, authorization: str | None, path: str) -> Caller | None:
        if self.tokens is None:
            return None
        try:
            return self.tokens.caller(authorization)
        except AuthenticationError as exc:
            log.warning("refused %s: %s", path, exc)  # never the token itself
            raise

    def read(self, caller: Caller | None, features, path: str) -> None:
        if caller is None:
            return
        if isinstance(features, str):
            resources = [self._service(features)]
        else:
            stored = request_time.plan(self.repo, features, True).stored
            resources = [self._view(v) for v in dict.fromkeys(ref.partition(":")[0] for ref in stored)]
        self._enforce(caller, resources, READ, "read", path)

    def push(self, caller: Caller | None, view: str, path: str) -> None:
        if caller is not None:
            self._enforce(caller, [self._view(view)], PUSH, "push", path)

    def _enforce(self, caller: Caller, resources, actions, what: str, path: str) -> None:
        try:
            enforce_policy(self.permissions, User(username=caller.name, roles=list(caller.roles)), resources, actions)
        except FeastPermissionError:
            names = ", ".join(f"{type(r).__name__} {r.name!r}" for r in resources)
            log.warning("denied %s: caller %r (roles %s) may not %s %s", path, caller.name, list(caller.roles), what, names)
            raise AccessDeniedError(f"caller {caller.name!r} may not {what} {names}") from None

    def _view(self, name: str) -> FeatureView:
        return _feast_view(name, self.settings)

    def _service(self, name: str) -> FeatureService:
        references(self.repo, name)  # unknown service: the platform's error
        service = self.repo.feature_services[name]
        views = {v: _feast_view(v, self.settings) for v in dict.fromkeys(r.partition(":")[0] for r in service.features)}
        return feast_feature_service(service, views)


@cache
def _feast_view(name: str, settings) -> FeatureView:
    return feast_feature_view(load_repository(settings.repo_location).view(name), settings)
