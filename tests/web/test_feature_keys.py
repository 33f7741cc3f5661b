"""Feature keys and plan names are data: any string is shown as itself, with its own numbers and ids."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.web.web_support import SECRET, record_now, token_for
from usagemeter_api import mint_token
from usagemeter_clickhouse import Client

pytest.importorskip("playwright", reason="Playwright for Python is not installed (pip install playwright)")
from playwright.sync_api import Page, expect

expect.set_options(timeout=20_000)

MARKUP_KEY = "<img src=x onerror=alert(1)>"
MARKUP_PLAN = "<img src=x onerror=alert(2)>"
# key -> (limit, uses, the name the page shows)
KEYS: dict[str, tuple[int, int, str]] = {
    "__proto__": (100, 1, "proto"),
    "constructor": (100, 2, "constructor"),
    "toString": (100, 3, "toString"),
    "hasOwnProperty": (100, 4, "hasOwnProperty"),
    "valueOf": (100, 5, "valueOf"),
    "a.b": (100, 6, "a.b"),
    "a_b": (100, 7, "a b"),
    MARKUP_KEY: (100, 8, MARKUP_KEY),
}

# Per row: the data key, the name shown, the numbers, the chart caption, and the text of the element
# the progress bar names as its label (found by id, so a shared id shows up as a wrong label).
_ROWS = """rows => rows.map((row) => {
    const meter = row.querySelector('[role="progressbar"]');
    const label = document.getElementById(meter.getAttribute("aria-labelledby"));
    return {
        key: row.dataset.feature,
        id: row.querySelector(".quota-name").id,
        name: row.querySelector(".quota-name").textContent,
        used: row.querySelector(".used").textContent,
        caption: row.querySelector(".chart-caption").textContent,
        label: label && label.closest(".quota") === row ? label.textContent : null,
    };
})"""


def _give_user_a_plan_of(site: str, user_id: str, limits: dict[str, int]) -> None:
    admin = {"Authorization": f"Bearer {mint_token(SECRET, 'operator', admin=True)}"}
    plan = {"id": "odd", "name": MARKUP_PLAN, "limits": limits}
    created = httpx.post(f"{site}/api/v1/admin/plans", json=plan, headers=admin, timeout=30)
    assert created.status_code == 201, created.text
    assigned = httpx.put(
        f"{site}/api/v1/admin/users/{user_id}/plan", json={"plan_id": "odd"}, headers=admin, timeout=30
    )
    assert assigned.status_code == 200, assigned.text


def test_any_feature_key_is_shown_as_itself_with_its_own_numbers(site: str, clickhouse: Client, open_page: Any) -> None:
    _give_user_a_plan_of(site, "mallory", {key: limit for key, (limit, _, _) in KEYS.items()})
    record_now(clickhouse, "mallory", {key: uses for key, (_, uses, _) in KEYS.items()})
    dialogs: list[str] = []
    page: Page = open_page("about:blank")
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{site}/#token={token_for('mallory')}")
    expect(page.locator("#usage-app")).to_have_attribute("data-state", "ready")
    expect(page.locator(".quota .chart-caption").filter(has_text="this period")).to_have_count(len(KEYS))

    rows = {row["key"]: row for row in page.locator(".quota").evaluate_all(_ROWS)}
    assert sorted(rows) == sorted(KEYS)
    for key, (limit, uses, name) in KEYS.items():
        row = rows[key]
        assert row["name"] == name, key
        assert row["used"] == f"{uses} of {limit} used", key
        assert row["caption"] == f"{uses} this period", key
        assert row["label"] == name, f"{key}: the progress bar is labelled by another row"
    assert len({row["id"] for row in rows.values()}) == len(KEYS)

    expect(page.locator("#plan-badge")).to_have_text(f"{MARKUP_PLAN} plan")
    assert page.locator("img").count() == 0
    assert dialogs == []
    text = page.locator("#usage-app").inner_text()
    assert "[object" not in text
    assert "native code" not in text


def test_translations_never_answer_with_inherited_members(site: str, open_page: Any) -> None:
    page: Page = open_page(f"{site}/")
    answers = page.evaluate(
        """async (keys) => {
            const { translator } = await import("/static/i18n.js");
            const answers = {};
            for (const lang of ["en", "es"]) {
                const i18n = translator(lang);
                for (const key of keys) answers[`${lang} feature ${key}`] = i18n.feature(key);
                for (const key of keys) answers[`${lang} text ${key}`] = i18n.t(key);
                answers[`${lang} params`] = i18n.t("greeting", Object.create({ name: "inherited" }));
            }
            return answers;
        }""",
        ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "features"],
    )
    for question, answer in answers.items():
        assert isinstance(answer, str), question
        assert "[object" not in answer and "native code" not in answer, (question, answer)
    assert answers["en feature __proto__"] == "proto"
    assert answers["es text toString"] == "toString"
    assert answers["en text features"] == "features"
    assert answers["en params"] == "Hello, "
