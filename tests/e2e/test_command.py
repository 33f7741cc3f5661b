"""The command line's promises: dev secrets, tokens, one-line errors, demo traffic."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt

from tests.conftest import free_port
from tests.e2e.conftest import RunningUp, dev_env, start_up, stop_up, usagemeter

ROOT = Path(__file__).resolve().parents[2]
CHAT = "chat_messages"


def test_token_without_secret_or_data_dir_fails_with_one_line_reason(tmp_path: Path) -> None:
    result = usagemeter("token", "--data-dir", str(tmp_path / "none"), "--user", "u", env=dev_env())
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "USAGEMETER_JWT_SECRET" in result.stderr


def test_up_keeps_its_dev_secret_in_the_data_dir_and_tokens_use_it(up: RunningUp) -> None:
    secret = (up.data_dir / "jwt_secret").read_text().strip()
    assert (up.data_dir / "jwt_secret").stat().st_mode & 0o077 == 0
    claims = jwt.decode(up.token("zoe", admin=True), secret, algorithms=["HS256"])
    assert claims["sub"] == "zoe" and claims["role"] == "admin" and claims["exp"] > time.time()
    assert "Admin token" in up.output()


def test_second_up_on_the_same_data_dir_fails_clearly(up: RunningUp, tmp_path: Path) -> None:
    result = usagemeter(
        "up",
        "--data-dir",
        str(up.data_dir),
        "--grpc-port",
        "0",
        "--http-port",
        "0",
        "--api-port",
        str(free_port()),
        env=dev_env(),
    )
    assert result.returncode == 2, result.stderr
    assert "in use" in result.stderr.splitlines()[-1]


def test_up_restarts_on_an_existing_data_dir(data_dir: Path, tmp_path: Path) -> None:
    first = start_up(data_dir, tmp_path / "first.log")
    assert stop_up(first) == 0
    second = start_up(data_dir, tmp_path / "second.log")
    assert stop_up(second) == 0


def test_demo_signs_alice_in_from_the_banner_on_pro_and_keeps_carol_within_her_hard_limit(
    data_dir: Path, tmp_path: Path
) -> None:
    # The shipped plans, but free allows no AI replies: the demo host must check before each one.
    plans = tmp_path / "plans.toml"
    shipped = (ROOT / "api/src/usagemeter_api/plans.toml").read_text()
    plans.write_text(shipped.replace("ai_content_generation = 50\n", "ai_content_generation = 0\n", 1))
    running = start_up(data_dir, tmp_path / "demo.log", "--demo", env={"USAGEMETER_PLANS_FILE": str(plans)})
    try:
        link = _sign_in_link(running.output())
        page, _, fragment = link.partition("#token=")
        assert page == f"http://127.0.0.1:{running.api_port}/", link
        assert "text/html" in httpx.get(page, timeout=10).headers["content-type"]
        headers = {"Authorization": f"Bearer {fragment}"}
        admin = {"Authorization": f"Bearer {running.token('admin', admin=True)}"}

        def carol(feature: str) -> float:
            url = f"{running.api}/quotas/{feature}?user_id=carol"
            return float(httpx.get(url, headers=admin, timeout=10).json()["used"])

        seen: list[float] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (len(set(seen)) < 2 or seen[-1] == 0 or carol(CHAT) < 3):
            quotas = httpx.get(f"{running.api}/quotas", headers=headers, timeout=10).json()
            seen.append(sum(item["used"] for item in quotas["quotas"]))
            time.sleep(1)
        assert seen[-1] > 0 and seen[-1] > min(seen), (seen, running.output())
        assert (quotas["user_id"], quotas["plan"]["id"]) == ("alice", "pro"), quotas["plan"]
        assert "ai_tokens" in {item["feature_key"] for item in quotas["quotas"]}
        assert carol(CHAT) >= 3 and carol("ai_content_generation") == 0, running.output()
        assigned = {
            user: httpx.get(f"{running.api}/admin/users/{user}/plan", headers=admin, timeout=10).json()["plan_id"]
            for user in ("bob", "carol", "dave")
        }
        assert assigned == {"bob": "enterprise", "carol": "free", "dave": "pro"}
    finally:
        assert stop_up(running) == 0


def _sign_in_link(banner: str) -> str:
    """The usage page link the banner prints beside the API URLs."""
    lines = [line.split()[2] for line in banner.splitlines() if line.startswith("  sign in ")]
    assert len(lines) == 1, banner
    return lines[0]


def test_unknown_benchmark_is_refused_with_the_known_names() -> None:
    result = usagemeter("bench", "no-such-benchmark", env=dev_env())
    assert result.returncode == 2
    assert "no benchmark 'no-such-benchmark' (known:" in result.stderr
