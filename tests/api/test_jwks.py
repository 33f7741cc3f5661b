"""RS256 tokens checked against a JWKS served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from pydantic import SecretStr

from tests.api.api_support import SECRET, bearer
from tests.conftest import free_port
from usagemeter_api import SettingsError, load_settings

QUOTAS = "/api/v1/quotas"


class _JwksServer:
    """Serves one JWKS document and counts the fetches."""

    def __init__(self, document: dict) -> None:
        body = json.dumps(document).encode()
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def _private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return _private_key()


@pytest.fixture
def jwks(signing_key) -> Iterator[_JwksServer]:
    public = RSAAlgorithm.to_jwk(signing_key.public_key(), as_dict=True)
    server = _JwksServer({"keys": [{**public, "kid": "key-1", "use": "sig", "alg": "RS256"}]})
    yield server
    server.close()


def _rs256(key, user="alice", kid="key-1", **claims) -> dict[str, str]:
    payload = {"sub": user, "exp": datetime.now(UTC) + timedelta(minutes=5), **claims}
    token = jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})
    return {"Authorization": f"Bearer {token}"}


def test_jwks_only_accepts_rs256_tokens_from_its_keys(make_api, jwks, signing_key):
    api = make_api(jwt_secret=SecretStr(""), jwt_jwks_url=jwks.url)
    response = api.get(QUOTAS, headers=_rs256(signing_key))
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == "alice"
    admin = api.get(QUOTAS, params={"user_id": "bob"}, headers=_rs256(signing_key, user="root", role="admin"))
    assert admin.status_code == 200 and admin.json()["user_id"] == "bob"
    public_pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    refused = {
        "unknown kid": _rs256(signing_key, kid="key-2"),
        "forged signature": _rs256(_private_key()),
        "expired": _rs256(signing_key, exp=datetime.now(UTC) - timedelta(seconds=5)),
        "hs256 without a secret": bearer("alice"),
        "public key as an hmac secret": {
            "Authorization": "Bearer " + _hs256_with_key(public_pem.decode()),
        },
    }
    for case, headers in refused.items():
        response = api.get(QUOTAS, headers=headers)
        assert response.status_code == 401, (case, response.text)
        assert response.json()["detail"].startswith("invalid token"), case


def _hs256_with_key(key: str) -> str:
    # Sign by hand: PyJWT refuses to use a PEM key as an HMAC secret, an attacker would not.
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = json.dumps({"alg": "HS256", "kid": "key-1"}).encode()
    claims = json.dumps({"sub": "alice", "exp": int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())}).encode()
    signing_input = f"{part(header)}.{part(claims)}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(signature)}"


def test_the_jwks_is_fetched_once_and_cached(make_api, jwks, signing_key):
    api = make_api(jwt_secret=SecretStr(""), jwt_jwks_url=jwks.url)
    for user in ("alice", "bob", "carol", "alice"):
        assert api.get(QUOTAS, headers=_rs256(signing_key, user=user)).status_code == 200
    assert jwks.fetches == 1


def test_secret_and_jwks_together_each_accept_only_their_algorithm(make_api, jwks, signing_key):
    api = make_api(jwt_jwks_url=jwks.url)
    assert api.get(QUOTAS, headers=bearer("alice")).status_code == 200
    assert api.get(QUOTAS, headers=_rs256(signing_key)).status_code == 200
    hs512 = jwt.encode({"sub": "alice", "exp": datetime.now(UTC) + timedelta(minutes=5)}, SECRET, algorithm="HS512")
    response = api.get(QUOTAS, headers={"Authorization": f"Bearer {hs512}"})
    assert response.status_code == 401 and "HS256 or RS256" in response.json()["detail"]


def test_an_unreachable_jwks_is_503_not_a_refusal(make_api, signing_key):
    api = make_api(jwt_jwks_url=f"http://127.0.0.1:{free_port()}/jwks.json")
    response = api.get(QUOTAS, headers=_rs256(signing_key))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert api.get(QUOTAS, headers=bearer("alice")).status_code == 200


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("JWT_SECRET", "JWT_JWKS_URL", "JWT_AUDIENCE", "JWT_ISSUER"):
        monkeypatch.delenv(f"USAGEMETER_{name}", raising=False)
    return monkeypatch


def test_a_jwks_url_alone_is_a_valid_configuration(clean_env):
    clean_env.setenv("USAGEMETER_JWT_JWKS_URL", "https://auth.example/.well-known/jwks.json")
    settings = load_settings()
    assert str(settings.jwt_jwks_url) == "https://auth.example/.well-known/jwks.json"
    assert settings.jwt_secret.get_secret_value() == ""


def test_neither_key_names_both_variables(clean_env):
    with pytest.raises(SettingsError, match=r"USAGEMETER_JWT_SECRET is required.*USAGEMETER_JWT_JWKS_URL"):
        load_settings()


def test_a_bad_jwks_url_is_named(clean_env):
    clean_env.setenv("USAGEMETER_JWT_JWKS_URL", "file:///etc/passwd")
    with pytest.raises(SettingsError, match="USAGEMETER_JWT_JWKS_URL"):
        load_settings()
