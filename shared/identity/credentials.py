"""Secrets made and checked: passwords (Argon2id, from argon2-cffi), and random tokens
(256 bits from ``secrets``) kept only as their SHA-256. Pure apart from the randomness.

argon2-cffi is the reference binding of the Password Hashing Competition's winner (pwdlib
wraps the same library); its defaults follow RFC 9106's second recommendation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as random  # the standard library's
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()


@cache
def _dummy() -> str:
    """Checked against when the name is unknown, so a wrong name costs as long as a wrong
    password (made on first use: a hash costs tens of milliseconds, not at every import)."""
    return _HASHER.hash(random.token_urlsafe(16))


TOKEN_PREFIX = "mq_"
MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def password_matches(stored: str | None, password: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made from (None: nobody's, still
    taking the time of a check)."""
    try:
        return _HASHER.verify(stored or _dummy(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


def new_password() -> str:
    """A password for a new account, shown once: 20 URL-safe characters (120 bits)."""
    return random.token_urlsafe(15)


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be used, or None."""
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    return None


def new_token() -> str:
    """A bearer token (shown once): a prefix that says what it is, then 256 random bits."""
    return TOKEN_PREFIX + random.token_urlsafe(32)


def new_session_id() -> str:
    return random.token_urlsafe(32)


def digest(secret: str) -> str:
    """What is stored of a token or a session id."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(given.encode(), expected.encode())
