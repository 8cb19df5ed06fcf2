"""Password hashes: argon2id (argon2-cffi's defaults, RFC 9106's second recommended profile)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()  # stateless parameters only; building it does no work
# Verified against when the username is unknown, so that an unknown user costs as long as a wrong password
# (the time a refusal takes does not tell which usernames exist). Computed on first use, not at import.
_dummy: list[str] = []


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if password_hash is None:
        if not _dummy:
            _dummy.append(_HASHER.hash("not-a-password-of-anyone"))
        password_hash = _dummy[0]
        _verify(password_hash, password)
        return False
    return _verify(password_hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
