"""Who may call the API, and how malformed requests are refused before AWS is asked."""

from __future__ import annotations

import pytest

from tests.harness import (
    ACCOUNT,
    AUTH,
    COOL,
    OTHER_ACCOUNT,
    PHONE,
    ROLE,
    TOKEN,
    seed_cpu,
    steady,
)

GOOD = {"account": ACCOUNT, "role": ROLE, "instance": COOL, "phone": PHONE}


def path(account: str, role: str, instance: str, phone: str) -> str:
    """Return the check route for the given segments."""
    return f"/check_cpu/{account}/{role}/{instance}/{phone}"


def test_missing_token_is_401(web, aws):
    """A request without a bearer token is refused before anything is checked."""
    answer = web.get(path(**GOOD))

    assert answer.status_code == 401
    assert "Bearer" in answer.json()["detail"]
    assert aws.calls == {}


def test_wrong_token_is_401(web, aws):
    """A token that is not configured is refused."""
    answer = web.get(path(**GOOD), headers={"Authorization": "Bearer not-a-real-token"})

    assert answer.status_code == 401
    assert answer.json()["detail"] == "The bearer token is not valid."
    assert aws.calls == {}


def test_no_tokens_configured_refuses_and_says_how_to_set_one(make_web, aws):
    """With API_TOKENS empty every check is refused with instructions."""
    web = make_web(API_TOKENS="")

    answer = web.get(path(**GOOD), headers=AUTH)

    assert answer.status_code == 401
    assert "set API_TOKENS" in answer.json()["detail"]
    assert aws.calls == {}


def test_any_configured_token_is_accepted(make_web, aws):
    """Each of several comma-separated tokens opens the API."""
    web = make_web(API_TOKENS=f"ops:first-token-abcdefghijkl,ci:{TOKEN}")
    seed_cpu(aws.upstream, COOL, steady(40.0))

    for token in ("first-token-abcdefghijkl", TOKEN):
        answer = web.get(path(**GOOD), headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200


def test_account_outside_allowed_accounts_is_403(make_web, aws):
    """ALLOWED_ACCOUNTS refuses other accounts without assuming any role."""
    web = make_web(ALLOWED_ACCOUNTS=OTHER_ACCOUNT)

    answer = web.get(path(**GOOD), headers=AUTH)

    assert answer.status_code == 403
    assert ACCOUNT in answer.json()["detail"]
    assert aws.calls == {}


def test_account_inside_allowed_accounts_is_checked(make_web, aws):
    """An allowed account is checked as usual."""
    web = make_web(ALLOWED_ACCOUNTS=f"{OTHER_ACCOUNT},{ACCOUNT}")
    seed_cpu(aws.upstream, COOL, steady(40.0))

    assert web.get(path(**GOOD), headers=AUTH).status_code == 200


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        pytest.param("account", "12345678901", "account id", id="account-11-digits"),
        pytest.param("account", "12345678901a", "account id", id="account-letter"),
        pytest.param("role", "a" * 65, "role name", id="role-too-long"),
        pytest.param("role", "bad*role", "role name", id="role-bad-character"),
        pytest.param("instance", "i-123", "instance id", id="instance-short"),
        pytest.param(
            "instance", "i-0a1b2c3d4e5f6000g", "instance id", id="instance-hex"
        ),
        pytest.param(
            "instance", "0a1b2c3d4e5f60001", "instance id", id="instance-prefix"
        ),
        pytest.param("phone", "4155552671", "phone number", id="phone-no-plus"),
        pytest.param("phone", "+1415555", "phone number", id="phone-too-short"),
        pytest.param("phone", "+999123456789", "phone number", id="phone-no-country"),
        pytest.param("phone", "+1abc5552671", "phone number", id="phone-letters"),
    ],
)
def test_malformed_path_field_is_400_naming_it(web, aws, twilio, field, value, words):
    """Each malformed field gets a 400 whose sentence names it, and no AWS call."""
    answer = web.get(path(**{**GOOD, field: value}), headers=AUTH)

    assert answer.status_code == 400
    assert words in answer.json()["detail"]
    assert aws.calls == {}
    assert twilio.posts == []


@pytest.mark.parametrize(
    ("params", "words"),
    [
        pytest.param({"region": "mars-1"}, "region", id="region-shape"),
        pytest.param({"region": "US-EAST-1"}, "region", id="region-case"),
        pytest.param({"threshold": "abc"}, "threshold", id="threshold-text"),
        pytest.param({"threshold": "101"}, "threshold", id="threshold-high"),
        pytest.param({"threshold": "-1"}, "threshold", id="threshold-negative"),
        pytest.param({"threshold": "nan"}, "threshold", id="threshold-nan"),
    ],
)
def test_malformed_query_field_is_400_naming_it(web, aws, params, words):
    """A malformed region or threshold gets a 400 naming it, and no AWS call."""
    answer = web.get(path(**GOOD), params=params, headers=AUTH)

    assert answer.status_code == 400
    assert words in answer.json()["detail"]
    assert aws.calls == {}


def test_url_encoded_plus_in_the_phone_number_is_accepted(web, aws):
    """``%2B`` in the path is the same number as ``+``."""
    seed_cpu(aws.upstream, COOL, steady(40.0))

    answer = web.get(path(**{**GOOD, "phone": "%2B14155552671"}), headers=AUTH)

    assert answer.status_code == 200
