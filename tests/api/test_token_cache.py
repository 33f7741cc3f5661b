"""Verified tokens are reused until their expiry and never after it."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.api.api_support import SECRET, bearer
from usagemeter_api import AuthError, Principal, TokenVerifier, mint_token
from usagemeter_api.core._token_cache import VerifiedTokens

_DEADLINE_SECONDS = 30


def test_an_entry_is_handed_out_until_its_expiry_and_not_at_it() -> None:
    now = [100.0]
    cache: VerifiedTokens[str] = VerifiedTokens(clock=lambda: now[0])
    cache.put("t", "alice", expires_at=200.0)
    now[0] = 199.9
    assert cache.get("t") == "alice"
    now[0] = 200.0
    assert cache.get("t") is None
    assert len(cache) == 0


def test_the_oldest_entry_makes_room_when_full() -> None:
    cache: VerifiedTokens[str] = VerifiedTokens(max_entries=2, clock=lambda: 0.0)
    for token in ("a", "b", "c"):
        cache.put(token, token.upper(), expires_at=10.0)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, "B", "C")


def test_a_verified_token_is_remembered_and_a_refused_one_is_not() -> None:
    verifier = TokenVerifier(SECRET)
    token = mint_token(SECRET, "alice")
    assert verifier.cached(token) is None
    assert verifier.verify(token) == Principal("alice")
    assert verifier.cached(token) == Principal("alice")
    forged = mint_token("another-secret-0123456789abcdef-0123456789", "alice")
    with pytest.raises(AuthError):
        verifier.verify(forged)
    assert verifier.cached(forged) is None


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    verifier = TokenVerifier(SECRET)
    token = mint_token(SECRET, "bob", ttl_seconds=1)
    assert verifier.verify(token) == Principal("bob")
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
    deadline = time.monotonic() + _DEADLINE_SECONDS
    while time.time() < expires_at:
        assert time.monotonic() < deadline, "the token never expired"
        time.sleep(0.05)
    with pytest.raises(AuthError, match="expired"):
        verifier.verify(token)


def test_a_request_with_a_remembered_token_is_answered_from_the_cache(make_api) -> None:  # type: ignore[no-untyped-def]
    api = make_api()
    headers = bearer("carol")
    token = headers["Authorization"].removeprefix("Bearer ")
    assert api.get("/api/v1/quotas", headers=headers).status_code == 200
    verifier: TokenVerifier = api.app.state.services.token_verifier
    assert verifier.cached(token) == Principal("carol")
    assert api.get("/api/v1/quotas", headers=headers).json()["user_id"] == "carol"
