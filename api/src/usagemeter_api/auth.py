"""Bearer tokens: HS256 JWTs whose ``sub`` is the user id and ``role: admin`` marks an admin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

__all__ = ["ALGORITHM", "MIN_SECRET_BYTES", "AuthError", "Principal", "TokenVerifier", "mint_token"]

#: The only algorithm accepted; fixed server-side so a token cannot choose it.
ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
ADMIN_ROLE = "admin"


class AuthError(Exception):
    """A bearer token is missing, malformed, forged or expired."""


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    admin: bool = False


@dataclass(frozen=True)
class TokenVerifier:
    """Checks tokens against the server's secret and optional audience and issuer."""

    secret: str
    audience: str | None = None
    issuer: str | None = None

    def verify(self, token: str) -> Principal:
        """Return the token's principal, or raise AuthError saying why it is refused."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise AuthError("invalid token: 'sub' must be a non-empty user id")
        return Principal(user_id=subject, admin=claims.get("role") == ADMIN_ROLE)


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
