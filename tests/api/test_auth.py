from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from tests.api.api_support import SECRET, bearer
from usagemeter_api import TokenVerifier, mint_token

PROTECTED = ["/api/v1/quotas", "/api/v1/quotas/chat_messages", "/api/v1/analytics/usage/chat_messages?period=today"]


def _signed(claims: dict, *, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _unsigned(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


_FUTURE = datetime.now(UTC) + timedelta(hours=1)
_PAST = datetime.now(UTC) - timedelta(seconds=5)

BAD_AUTHORIZATION = {
    "missing": None,
    "empty": "",
    "basic scheme": "Basic YWxpY2U6c2VjcmV0",
    "bearer without token": "Bearer ",
    "garbage": "Bearer not-a-jwt",
    "truncated": "Bearer " + mint_token(SECRET, "alice")[:-10],
    "expired": "Bearer " + _signed({"sub": "alice", "exp": _PAST}),
    "forged": "Bearer " + mint_token("another-secret-of-sufficient-length!!", "alice", admin=True),
    "alg none": "Bearer " + _unsigned({"sub": "alice", "exp": int(_FUTURE.timestamp()), "role": "admin"}),
    "other algorithm": "Bearer " + _signed({"sub": "alice", "exp": _FUTURE}, algorithm="HS512"),
    "no exp": "Bearer " + _signed({"sub": "alice"}),
    "no sub": "Bearer " + _signed({"exp": _FUTURE}),
    "empty sub": "Bearer " + _signed({"sub": "", "exp": _FUTURE}),
    "numeric sub": "Bearer " + _signed({"sub": 42, "exp": _FUTURE}),
    "not yet valid": "Bearer " + _signed({"sub": "alice", "exp": _FUTURE, "nbf": _FUTURE - timedelta(minutes=5)}),
}


@pytest.mark.parametrize("case", list(BAD_AUTHORIZATION))
def test_bad_credentials_are_401_with_a_bearer_challenge(shared_api, case):
    value = BAD_AUTHORIZATION[case]
    headers = {} if value is None else {"Authorization": value}
    for path in PROTECTED:
        response = shared_api.get(path, headers=headers)
        assert response.status_code == 401, (case, path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["detail"]


def test_audience_and_issuer_are_enforced_when_configured(make_api):
    api = make_api(jwt_audience="usagemeter", jwt_issuer="https://auth.example")
    good = bearer("alice", audience="usagemeter", issuer="https://auth.example")
    assert api.get("/api/v1/quotas", headers=good).status_code == 200
    for audience, issuer in ((None, None), ("other", "https://auth.example"), ("usagemeter", None)):
        response = api.get("/api/v1/quotas", headers=bearer("alice", audience=audience, issuer=issuer))
        assert response.status_code == 401, (audience, issuer)


def test_role_other_than_admin_grants_nothing(shared_api):
    token = _signed({"sub": "alice", "exp": _FUTURE, "role": "superuser"})
    response = shared_api.get("/api/v1/quotas", params={"user_id": "bob"}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


def test_health_needs_no_token(api):
    response = api.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "clickhouse": "ok"}


def test_minted_tokens_carry_the_contract_claims():
    token = mint_token(SECRET, "alice", admin=True, ttl_seconds=60, audience="aud", issuer="iss")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="aud", issuer="iss")
    assert claims["sub"] == "alice" and claims["role"] == "admin"
    assert 0 < claims["exp"] - claims["iat"] <= 60
    plain = jwt.decode(mint_token(SECRET, "bob"), SECRET, algorithms=["HS256"])
    assert "role" not in plain
    principal = TokenVerifier(SECRET).verify(mint_token(SECRET, "bob"))
    assert (principal.user_id, principal.admin) == ("bob", False)


@pytest.mark.parametrize(
    ("secret", "user_id", "ttl"),
    [("short", "alice", 60), (SECRET, "", 60), (SECRET, "alice", 0), (SECRET, "alice", -5)],
)
def test_mint_token_rejects_bad_arguments(secret, user_id, ttl):
    with pytest.raises(ValueError):
        mint_token(secret, user_id, ttl_seconds=ttl)
