"""Bearer JWT identity per the contract: HS256, claims ``sub``, ``role``, ``exp``."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Annotated, Literal

import jwt
from fastapi import Depends, Request

from shared.problems import Problem
from shared.text import text_error

Role = Literal["rep", "manager", "admin", "integration"]
ROLES: tuple[Role, ...] = ("rep", "manager", "admin", "integration")
ALGORITHM = "HS256"


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``sub`` is the actor id (a rep id for reps)."""

    sub: str
    role: Role

    @property
    def is_supervisor(self) -> bool:
        """Managers and admins see and act on everything."""
        return self.role in ("manager", "admin")


def mint_token(secret: str, sub: str, role: Role, ttl_seconds: int = 8 * 3600) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "role": role, "iat": now, "exp": now + ttl_seconds}, secret, ALGORITHM)


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


# Verified tokens by (secret, token), each with its expiry: a client sends the same token with every
# request, and decoding and checking it again each time costs more CPU than most handlers.
_VERIFIED_MAX = 10_000
_verified: dict[tuple[str, str], tuple[Principal, float]] = {}


def verify_token(secret: str, token: str) -> Principal:
    """The caller a token names; a token verified before is answered from memory until it expires."""
    key = (secret, token)
    known = _verified.get(key)
    if known is not None and time.time() < known[1]:
        return known[0]
    principal, expires = _decode(secret, token)
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified[key] = (principal, expires)
    return principal


def _decode(secret: str, token: str) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError as exc:
        raise _unauthorized("The token has expired.") from exc
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"The token is not valid: {exc}.") from exc
    role = claims.get("role")
    if role not in ROLES:
        raise _unauthorized(f"The token's role must be one of {', '.join(ROLES)}.")
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub:
        raise _unauthorized("The token's subject is empty.")
    # The subject is recorded as the actor (rep_id, captured_by, …) in events that are kept forever.
    if (error := text_error(sub)) is not None:
        raise _unauthorized(f"The token's subject {error}.")
    return Principal(sub=sub, role=role), float(claims["exp"])


def current_principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("Send Authorization: Bearer <JWT>.")
    return verify_token(request.app.state.settings.jwt_secret, token.strip())


def authorize(request: Request, roles: tuple[Role, ...]) -> Principal:
    """The caller, if their role is one of ``roles``: 401 without a valid token, 403 for the other roles.

    What :func:`require_roles` checks, for a route that does without dependencies (their resolution
    costs a hot route more than the check itself).
    """
    return _admitted(current_principal(request), roles)


def _admitted(principal: Principal, roles: tuple[Role, ...]) -> Principal:
    if principal.role not in roles:
        raise Problem(403, "forbidden-role", f"Role {principal.role!r} may not do this; needs one of {', '.join(roles)}.")
    return principal


async def _principal_dependency(request: Request) -> Principal:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop per request
    # for a few microseconds of CPU.
    return current_principal(request)


CurrentPrincipal = Annotated[Principal, Depends(_principal_dependency)]


def require_roles(*roles: Role):
    """A dependency that admits only the given roles (403 for the others)."""

    async def dependency(principal: CurrentPrincipal) -> Principal:
        return _admitted(principal, roles)

    return Depends(dependency)


def main() -> None:
    """``python -m shared.auth --sub rep-1 --role rep``: print a token for local use."""
    from shared.config import ServiceSettings

    parser = argparse.ArgumentParser(description="Mint a LeadFlow JWT for local use.")
    parser.add_argument("--sub", required=True, help="actor id, e.g. a rep id")
    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument("--ttl", default="8h", help="lifetime, e.g. 30m, 8h, 7d")
    args = parser.parse_args()
    from shared.config import parse_duration

    ttl = int(parse_duration(args.ttl).total_seconds())
    print(mint_token(ServiceSettings().jwt_secret, args.sub, args.role, ttl))


if __name__ == "__main__":
    main()
