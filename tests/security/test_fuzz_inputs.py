"""Hostile values against every API operation and every form: never a 500.

The API's operations are read from its own OpenAPI schema (/api/schema/), so a new
endpoint is covered the day it is added; the forms are read from the pages themselves
(privacy page and officer pages, signed in). Each request carries values from the
classes that have reached a 500 before: NUL characters, lone surrogates, integers past
64 bits, dates at the ends of the calendar, wrong JSON types, very long strings, in the
body, the path, the query, headers and cookies. An API refusal must carry the error
envelope with a code.

Deterministic (derandomize, no example database) and bounded, so that it runs the same
in CI every time and within seconds per operation.
"""

import json
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.hostile import (
    BIG_NUMBERS,
    EDGE_TIMES,
    KILLER_TIMES,
    KILLERS,
    LONG_LENGTHS,
    NASTY_TEXT,
    good,
    schema_operations,
    url_part,
)
from tests.web.conftest import make_household, make_officer, verify_session

API_EXAMPLES = 40
FORM_EXAMPLES = 40

text = st.one_of(
    st.sampled_from(KILLERS),
    st.sampled_from(NASTY_TEXT),
    st.sampled_from(EDGE_TIMES),
    st.text(alphabet=st.characters(codec=None, categories=["Cs", "Cc", "L", "N"]), max_size=12),
    st.sampled_from(LONG_LENGTHS).map(lambda n: "x" * n),
)
scalar = st.one_of(
    text,
    st.sampled_from(BIG_NUMBERS),
    st.integers(),
    st.sampled_from([None, True, False]),
)
hostile = st.one_of(
    scalar,
    st.lists(scalar, max_size=3),
    st.dictionaries(text, scalar, max_size=2),
    st.just([[[[[]]]]]),
)
# The ids of the household the API tests run against (tests/web/conftest.py's
# make_household("alice")) in the good values around a hostile one.
IDS = {
    "profile": "prof-alice",
    "account": "acct-alice",
    "recording_id": "rec-alice-2",
    "profile_id": "prof-alice",
    "recordings": ["rec-alice-2", "rec-alice-5"],
}


def _good(name: str, spec: dict[str, Any]) -> Any:
    return good(name, spec, IDS)


def _bad(spec: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Hostile values, most of them of the field's own JSON type."""
    kind = spec.get("type")
    if kind == "array":
        return st.one_of(
            st.lists(st.sampled_from(KILLERS), min_size=1, max_size=2),
            st.lists(text, min_size=1, max_size=3),
            hostile,
        )
    if kind == "string" and spec.get("format") == "date-time":
        return st.one_of(st.sampled_from(KILLER_TIMES), st.sampled_from(EDGE_TIMES), hostile)
    if kind == "string":
        return st.one_of(st.sampled_from(KILLERS), text, hostile)
    return hostile


def _wire(raw: str) -> str:
    """A str as a WSGI server hands a header over: its UTF-8 bytes read as Latin-1
    (lone surrogates are sent as the bytes a careless encoder writes for them)."""
    return raw.encode("utf-8", "surrogatepass").decode("latin-1")


def _query(params: dict[str, Any]) -> str:
    return "&".join(f"{url_part(k)}={url_part(v)}" for k, v in params.items())


def _assert_answer(response: Any, what: str) -> None:
    assert response.status_code < 500, f"{what} -> {response.status_code}"
    if 400 <= response.status_code < 500 and response.request["PATH_INFO"].startswith("/api/"):
        assert response["Content-Type"].startswith("application/json"), what
        error = json.loads(response.content)["error"]
        assert isinstance(error["code"], str) and error["code"], what


# --- the API, from its schema -------------------------------------------------------


def _operations() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    # read at collection, before the test environment admits the host "testserver"
    answer = Client().get("/api/schema/", {"format": "json"}, HTTP_HOST="127.0.0.1")
    return schema_operations(json.loads(answer.content))


OPERATIONS = _operations()


def test_the_schema_lists_the_operations_we_mean_to_fuzz():
    paths = {path for path, *_ in OPERATIONS}
    assert {"/api/v1/eligibility/batch", "/api/v1/samples", "/api/v1/recordings"} <= paths
    assert len(OPERATIONS) >= 25


@pytest.fixture
def platform_data(platform) -> Any:
    make_household("alice")
    return platform


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "method", "operation", "properties"),
    OPERATIONS,
    ids=[f"{m.upper()} {p}" for p, m, *_ in OPERATIONS],
)
@settings(
    max_examples=API_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_no_hostile_value_makes_an_api_operation_answer_500(
    platform_data, path, method, operation, properties, data
):
    client = platform_data
    params = {}
    for parameter in operation.get("parameters", []):
        name = parameter["name"]
        spec = parameter.get("schema", {})
        if parameter["in"] == "path":
            raw = data.draw(st.one_of(st.just(_good(name, spec)), text, hostile), label=name)
            path = path.replace("{" + name + "}", url_part(raw) or "x")
        elif parameter["in"] == "query":
            raw = data.draw(st.one_of(st.just(_good(name, spec)), _bad(spec)), label=name)
            params[name] = raw
    url = path + ("?" + _query(params) if params else "")
    headers = {}
    if data.draw(st.booleans(), label="hostile headers"):
        headers = {
            "HTTP_IDEMPOTENCY_KEY": _wire(str(data.draw(text))),
            "HTTP_X_FORWARDED_FOR": _wire(str(data.draw(text))),
            "HTTP_COOKIE": data.draw(
                st.sampled_from(['sessionid="abc\\000defghijk"', "sessionid=abcdefgh"]).map(
                    lambda cookie: cookie + _wire(str(data.draw(text)))
                )
            ),
            "HTTP_ACCEPT": data.draw(st.sampled_from(["application/json", "*/*", "text/html"])),
        }
    if method in ("get", "delete"):
        response = getattr(client, method)(url, **headers)
    else:
        if data.draw(st.integers(0, 9), label="whole body hostile") == 0:
            body = data.draw(hostile, label="body")
        else:
            body = {name: _good(name, spec) for name, spec in properties.items()}
            body.pop("audio", None)  # a file: only in multipart
            names = sorted(properties)
            for target in data.draw(
                st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True)
                if names
                else st.just([]),
                label="hostile fields",
            ):
                body[target] = data.draw(_bad(properties[target]), label=target)
            if data.draw(st.integers(0, 4), label="extra field") == 0:
                body[data.draw(text, label="extra name")] = data.draw(hostile)
        response = getattr(client, method)(
            url, json.dumps(body), content_type="application/json", **headers
        )
    _assert_answer(response, f"{method.upper()} {url} {headers}")


# --- the forms, from the pages -------------------------------------------------------


class _Forms(HTMLParser):
    """Each <form>: its method, action and the names (with the values) of its fields."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append(
                {
                    "method": (attributes.get("method") or "get").lower(),
                    "action": attributes.get("action") or "",
                    "fields": {},
                }
            )
        elif tag in ("input", "select", "textarea", "option", "button") and self.forms:
            fields = self.forms[-1]["fields"]
            if tag == "option":
                if fields:
                    last = list(fields)[-1]
                    fields[last].append(attributes.get("value") or "")
                return
            name = attributes.get("name")
            if name:
                fields.setdefault(name, []).append(attributes.get("value") or "")


def _forms_on(client: Client, page: str) -> list[dict[str, Any]]:
    response = client.get(page)
    assert response.status_code == 200, page
    parser = _Forms()
    parser.feed(response.content.decode())
    for form in parser.forms:
        form["action"] = form["action"] or page
    return [f for f in parser.forms if not re.search(r"logout|sign-out", f["action"])]


form_text = st.one_of(
    st.sampled_from(KILLERS),
    st.sampled_from(NASTY_TEXT),
    st.sampled_from(EDGE_TIMES),
    st.sampled_from([str(n) for n in BIG_NUMBERS]),
    st.sampled_from(["9999-12-31T23:59", "0001-01-01T00:00", "9999-12-31", "0001-01-01"]),
    st.text(alphabet=st.characters(codec=None, categories=["Cs", "Cc", "L", "N"]), max_size=12),
    st.sampled_from([257, 10_001]).map(lambda n: "x" * n),
)


GOOD_FORM = {
    "jurisdiction": "US",
    "reviewer_location": "IE",
    "retention_days": "30",
    "target": "acct-alice",
    "case_reference": "C-1",
    "reason": "a reason",
    "date_from": "2026-01-01",
    "date_to": "2026-02-01",
    "effective_from": "2026-01-01T00:00",
    "recording": "rec-alice-2",
    "confirm": "on",
}


def _form_body(fields: dict[str, list[str]], data: Any) -> str:
    """An urlencoded body as a browser (or anything else) would send its bytes: every
    field a good value but one or two hostile ones."""
    pairs = {}
    for name, known in fields.items():
        options = [v for v in known if v]
        pairs[name] = GOOD_FORM.get(name) or (options[0] if options else "x")
        if len(options) > 1:
            pairs[name] = data.draw(st.sampled_from(options), label=name)
    names = sorted(fields)
    if names:
        for target in data.draw(
            st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True),
            label="hostile fields",
        ):
            pairs[target] = data.draw(form_text, label=target)
    if data.draw(st.integers(0, 4), label="extra field") == 0:
        pairs[data.draw(form_text, label="extra name")] = data.draw(form_text)
    return "&".join(f"{url_part(k)}={url_part(v)}" for k, v in pairs.items())


PRIVACY_PAGES = ["/privacy/", "/privacy/profiles/prof-alice/recordings/"]
OFFICER_PAGES = [
    "/officer/policies/",
    "/officer/consent-defaults/",
    "/officer/transfer-rules/",
    "/officer/holds/",
    "/officer/ledger/",
]


@pytest.fixture
def signed_in_pages(db) -> dict[str, Any]:
    """An end user and a verified officer, each on their pages; a policy, a default, a
    rule and a hold exist so that their remove forms appear too."""
    from compliance.consent.services import consent_default_create
    from compliance.retention.services import legal_hold_place, retention_policy_create
    from compliance.transfers.services import transfer_rule_create

    home = make_household("alice")
    owner = Client()
    owner.force_login(home.user)
    user, device = make_officer()
    officer = Client()
    officer.force_login(user)
    verify_session(officer, device)
    retention_policy_create(
        jurisdiction="US", category="audio", retention_days=30, applies_to="all", actor="t"
    )
    consent_default_create(jurisdiction="US", purpose="model_training", granted=True, actor="t")
    transfer_rule_create(jurisdiction="US", reviewer_location="IE", actor="t")
    legal_hold_place(account=home.adult.account, reason="r", case_reference="c", actor="t")
    return {"owner": owner, "officer": officer}


def test_the_pages_show_the_forms_we_mean_to_fuzz(signed_in_pages):
    owner = [f["action"] for p in PRIVACY_PAGES for f in _forms_on(signed_in_pages["owner"], p)]
    officer = [f["action"] for p in OFFICER_PAGES for f in _forms_on(signed_in_pages["officer"], p)]

    assert any("/consents/" in a for a in owner)
    assert any("/deletions/" in a for a in owner)
    assert any("/retention/" in a for a in owner)
    assert {"/officer/policies/", "/officer/holds/", "/officer/transfer-rules/"} <= set(officer)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "page"), [("owner", p) for p in PRIVACY_PAGES] + [("officer", p) for p in OFFICER_PAGES]
)
@settings(
    max_examples=FORM_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_no_hostile_value_makes_a_form_answer_500(signed_in_pages, who, page, data):
    client = signed_in_pages[who]
    # read once per test: the examples add rows, and with them remove forms; hypothesis
    # needs the same choices in every example
    if f"forms {page}" not in signed_in_pages:
        signed_in_pages[f"forms {page}"] = _forms_on(client, page)
    forms = signed_in_pages[f"forms {page}"]
    form = data.draw(st.sampled_from(forms), label="form")
    body = _form_body(form["fields"], data)
    if form["method"] == "get":
        response = client.get(f"{form['action']}?{body}")
    else:
        response = client.post(
            form["action"], body, content_type="application/x-www-form-urlencoded"
        )
    _assert_answer(response, f"{form['method']} {form['action']} {body[:300]}")
    query = {"page": data.draw(form_text), "kind": data.draw(form_text), "released": "1"}
    _assert_answer(client.get(f"{page}?{_query(query)}"), f"GET {page} {query}")


@pytest.mark.django_db
@settings(
    max_examples=FORM_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(username=form_text, password=form_text, next_url=form_text)
def test_no_hostile_value_makes_the_sign_in_form_answer_500(username, password, next_url):
    body = urlencode(
        {"username": username, "password": password, "next": next_url},
        encoding="utf-8",
        errors="surrogatepass",
    )
    response = Client().post(
        "/accounts/login/", body, content_type="application/x-www-form-urlencoded"
    )

    _assert_answer(response, f"sign-in {body[:300]}")
