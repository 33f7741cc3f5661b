from __future__ import annotations

import pytest
from pydantic import SecretStr

from tests.api.api_support import SECRET
from usagemeter_api import ApiSettings, PlansError, create_app, load_plans

VALID = """
default_plan = "basic"
[plans.basic]
name = "Basic"
[plans.basic.limits]
chat_messages = 5
"""


def test_shipped_plans_match_the_product_defaults():
    catalog = load_plans()
    assert catalog.default_plan == "free"
    free, pro = catalog.plans["free"], catalog.plans["pro"]
    assert free.shorthand_limits() == {"ai_content_generation": 50, "chat_messages": 500, "document_export": 10}
    assert pro.shorthand_limits() == {"ai_content_generation": 2000, "chat_messages": None, "document_export": 200}
    assert {feature.unit for feature in free.features.values()} == {"uses"}
    assert (free.period, free.near_limit_ratio) == ("month", 0.8)
    assert catalog.plan_for("anyone") == ("free", free)


def test_a_minimal_file_takes_the_defaults(plans_file):
    catalog = load_plans(plans_file(VALID))
    plan = catalog.plans["basic"]
    assert (plan.period, plan.near_limit_ratio, catalog.assignments) == ("month", 0.8, {})


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (VALID + "[plans.basic.limitz]\nx = 1\n", "plans.basic.limitz"),
        (VALID.replace("chat_messages = 5", "chat_messages = -1"), "plans.basic: limits.chat_messages"),
        (VALID.replace("chat_messages = 5", 'chat_messages = "lots"'), "plans.basic: limits.chat_messages"),
        (VALID.replace("chat_messages = 5", "chat_messages = 2.0000001"), "plans.basic: limits.chat_messages"),
        (VALID.replace("chat_messages = 5", "chat_messages = true"), "plans.basic: limits.chat_messages"),
        (VALID.replace('name = "Basic"', 'name = "Basic"\nperiod = "year"'), "plans.basic.period"),
        (VALID.replace('name = "Basic"', 'name = "Basic"\nnear_limit_ratio = 1.5'), "plans.basic.near_limit_ratio"),
        (VALID.replace('name = "Basic"\n', ""), "plans.basic.name"),
        (VALID.replace('default_plan = "basic"', 'default_plan = "gold"'), "default_plan"),
        (VALID + '[assignments]\nalice = "gold"\n', "assignments.alice"),
        ('default_plan = "basic"\n', "plans"),
        (VALID + "colour = 'blue'\n", "colour"),
        (VALID + "[plans.basic\n", "not valid TOML"),
    ],
)
def test_bad_plans_files_fail_naming_the_bad_key(plans_file, text, named):
    path = plans_file(text)
    with pytest.raises(PlansError) as caught:
        load_plans(path)
    assert named in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_plans_file_is_a_clear_error(tmp_path):
    with pytest.raises(PlansError, match="cannot read plans file"):
        load_plans(tmp_path / "absent.toml")


def test_the_app_refuses_to_start_with_a_bad_plans_file(plans_file):
    settings = ApiSettings(jwt_secret=SecretStr(SECRET), plans_file=plans_file('default_plan = "x"\n'))
    with pytest.raises(PlansError):
        create_app(settings, lambda: pytest.fail("no client is opened while building the app"))
