"""Optional bearer-token authentication of ingest requests."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from usagemeter_collector._errors import Unauthenticated


class TokenCheck:
    """Accepts ``Authorization: Bearer <token>`` for one of the configured tokens; no tokens accepts everyone."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._tokens = [token.encode() for token in tokens]

    def check(self, authorization: str | None) -> None:
        """Raise Unauthenticated unless ``authorization`` carries an accepted token."""
        if not self._tokens:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("ingest requires Authorization: Bearer <token>")
        given = token.strip().encode()
        # Compare against every token in constant time so timing does not reveal a prefix.
        if not any([hmac.compare_digest(given, accepted) for accepted in self._tokens]):
            raise Unauthenticated("ingest token is not accepted")
