"""Bearer tokens: random, shown once, stored only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32  # 256 bits of entropy; token_urlsafe makes 43 characters of them


def new_token() -> str:
    """A fresh random bearer token (URL-safe text)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored.

    A plain (unsalted) hash is enough here because tokens are 256-bit random, not
    passwords: there is nothing to guess, and the digest must be searchable by index.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, token_hash: str) -> bool:
    """Whether `token` hashes to `token_hash`, compared in constant time."""
    return hmac.compare_digest(hash_token(token), token_hash)
