"""Bearer tokens: JWTs whose ``sub`` is the user id and ``role: admin`` marks an admin.

Tokens are HS256 with the shared secret, or RS256 with a key from a JWKS URL. Each kind of
key accepts only its own algorithm, fixed server-side, so a token cannot choose how it is checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from usagemeter_api.core._token_cache import VerifiedTokens
from usagemeter_api.errors import AuthError, AuthUnavailable

__all__ = [
    "ALGORITHM",
    "JWKS_ALGORITHM",
    "MIN_SECRET_BYTES",
    "Principal",
    "TokenVerifier",
    "jwks_client",
    "mint_token",
]

#: The algorithm of tokens signed with the shared secret.
ALGORITHM = "HS256"
#: The algorithm of tokens signed with a key published at the JWKS URL.
JWKS_ALGORITHM = "RS256"
MIN_SECRET_BYTES = 32
ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    admin: bool = False


def jwks_client(url: str, cache_seconds: float = 300, timeout_seconds: float = 5) -> jwt.PyJWKClient:
    """A client that fetches the JWKS at ``url`` and caches it (and each key) for ``cache_seconds``."""
    # The cooldown bounds the refetches a stream of unknown key ids can cause.
    return jwt.PyJWKClient(url, cache_keys=True, lifespan=cache_seconds, timeout=timeout_seconds, cooldown_duration=30)


@dataclass(frozen=True)
class TokenVerifier:
    """Checks tokens against the shared secret and/or a JWKS, and the optional audience and issuer."""

    secret: str | None = None
    audience: str | None = None
    issuer: str | None = None
    jwks: jwt.PyJWKClient | None = None
    #: Tokens already verified, reused until their ``exp`` without checking the signature again.
    verified: VerifiedTokens[Principal] = field(default_factory=VerifiedTokens, compare=False, repr=False)

    def cached(self, token: str) -> Principal | None:
        """The principal of ``token`` if it was verified before and has not expired since, else None."""
        return self.verified.get(token)

    def verify(self, token: str) -> Principal:
        """Return the token's principal, or raise AuthError saying why it is refused.

        Raises AuthUnavailable when the JWKS cannot be fetched to check an RS256 token.
        A verified token is remembered until its ``exp``, so repeating it costs a lookup.
        """
        principal = self.verified.get(token)
        if principal is not None:
            return principal
        principal, expires_at = self._check(token)
        self.verified.put(token, principal, expires_at)
        return principal

    def _check(self, token: str) -> tuple[Principal, float]:
        try:
            key, algorithm = self._key_for(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise AuthUnavailable(f"cannot fetch the signing keys: {exc}") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise AuthError("invalid token: 'sub' must be a non-empty user id")
        return Principal(user_id=subject, admin=claims.get("role") == ADMIN_ROLE), float(claims["exp"])

    def _key_for(self, token: str) -> tuple[Any, str]:
        algorithm = jwt.get_unverified_header(token).get("alg")
        if algorithm == JWKS_ALGORITHM and self.jwks is not None:
            return self.jwks.get_signing_key_from_jwt(token).key, JWKS_ALGORITHM
        if algorithm == ALGORITHM and self.secret:
            return self.secret, ALGORITHM
        raise AuthError(f"invalid token: algorithm {str(algorithm)[:20]!r} is not accepted; use {self._accepted()}")

    def _accepted(self) -> str:
        accepted = ([ALGORITHM] if self.secret else []) + ([JWKS_ALGORITHM] if self.jwks is not None else [])
        return " or ".join(accepted) or "nothing (no key is configured)"


def mint_token(
    secret: str,
    user_id: str,
    *,
    admin: bool = False,
    ttl_seconds: int = 86400,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """Sign a token for ``user_id`` valid for ``ttl_seconds`` (``role: admin`` when ``admin``)."""
    if not user_id:
        raise ValueError("user_id must not be empty")
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"the signing secret must be at least {MIN_SECRET_BYTES} bytes long")
    issued = datetime.now(UTC)
    claims: dict[str, object] = {"sub": user_id, "iat": issued, "exp": issued + timedelta(seconds=ttl_seconds)}
    if admin:
        claims["role"] = ADMIN_ROLE
    if audience is not None:
        claims["aud"] = audience
    if issuer is not None:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
