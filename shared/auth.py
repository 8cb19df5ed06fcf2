"""Bearer JWT identity per the contract: HS256, claims ``sub``, ``role``, ``exp``."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Annotated, Literal

import jwt
from fastapi import Depends, Request

from shared.problems import Problem

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


def verify_token(secret: str, token: str) -> Principal:
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
    return Principal(sub=sub, role=role)


def current_principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("Send Authorization: Bearer <JWT>.")
    return verify_token(request.app.state.settings.jwt_secret, token.strip())


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: Role):
    """A dependency that admits only the given roles (403 for the others)."""

    def dependency(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            raise Problem(403, "forbidden-role", f"Role {principal.role!r} may not do this; needs one of {', '.join(roles)}.")
        return principal

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
