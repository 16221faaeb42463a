"""Fuzzing the service's POST routes: whatever the body, the answer is a 200, or a 4xx or 503
with a JSON error, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from recausal import usecases
from recausal.service.app import create_app

ROUTES = ("/recommend", "/explain")

#: any JSON value, nested a little
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
#: item tokens and user ids: mostly real ones of the tiny planted dataset, some not
tokens = st.integers(min_value=0, max_value=30).map(str) | st.integers(-3, 30) | st.text(max_size=6)
#: explainers other than the default (causal discovery is the slowest; it has its own tests)
explainers = st.sampled_from([n for n in usecases.explainer_names() if n != "causal"])

#: well-formed bodies: real users, items and models, small explanation sets
valid_bodies = st.fixed_dictionaries(
    {"explainer": explainers},
    optional={
        "model": st.sampled_from(["sasrec", "bert4rec"]),
        "k": st.integers(min_value=3, max_value=20),
        "max_size": st.integers(min_value=1, max_value=3),
        "removal": st.sampled_from(["delete", "pad"]),
        "seed": st.integers(min_value=0, max_value=2**32 - 1),
        "rank": st.integers(min_value=1, max_value=3),
        "exclude_seen": st.booleans(),
        "include_graph": st.booleans(),
    },
).flatmap(
    lambda body: st.one_of(
        st.integers(1, 120).map(lambda user: {**body, "user": str(user)}),
        st.lists(st.integers(1, 24).map(str), min_size=1, max_size=15).map(
            lambda items: {**body, "history": items}
        ),
    )
)
#: a well-formed body with one field changed to anything, or added, or dropped
mutated_bodies = st.tuples(
    valid_bodies,
    st.sampled_from(["model", "user", "history", "k", "max_size", "item", "rank", "seed", "x"]),
    st.none() | tokens | json_values,
    st.booleans(),
).map(
    lambda t: (
        {key: value for key, value in t[0].items() if key != t[1]} if t[3] else {**t[0], t[1]: t[2]}
    )
)
#: anything shaped like a body: each field plausible or random, sometimes extra fields
wild_bodies = st.builds(
    lambda body, extra: {**extra, **body},
    st.fixed_dictionaries(
        {"explainer": explainers | st.text(max_size=12)},
        optional={
            "model": st.sampled_from(["sasrec", "bert4rec", "nope"]) | json_values,
            "user": tokens | json_values,
            "history": st.lists(tokens, min_size=0, max_size=15) | json_values,
            "k": st.integers(min_value=-2, max_value=120) | json_values,
            "max_size": st.integers(min_value=-1, max_value=12) | json_values,
            "removal": st.sampled_from(["delete", "pad"]) | json_values,
            "seed": st.integers(min_value=-1, max_value=2**33) | json_values,
            "item": tokens | json_values,
            "rank": st.integers(min_value=-1, max_value=12) | json_values,
            "exclude_seen": st.booleans() | json_values,
            "include_graph": st.booleans() | json_values,
        },
    ),
    st.just({}) | st.dictionaries(st.text(max_size=8), json_values, max_size=2),
)
bodies = valid_bodies | mutated_bodies | wild_bodies


@pytest.fixture(scope="module")
def client(sasrec, bert4rec):
    """Both tiny models, behind the Host check (TestClient's Host is ``testserver``)."""
    app = create_app({"sasrec": sasrec, "bert4rec": bert4rec}, allowed_hosts=["testserver"])
    # server exceptions are not raised: a 500 must come back as an answer the test sees
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.pool.close()


def _check(response: Any, sent: Any) -> None:
    status = response.status_code
    event(f"status {status}")  # the spread shows with --hypothesis-show-statistics
    assert status == 200 or 400 <= status < 500 or status == 503, (status, sent, response.text)
    assert response.headers["content-type"] == "application/json", (sent, response.text[:200])
    answer = response.json()
    if status != 200:
        assert isinstance(answer["error"], str) and answer["error"], (sent, answer)
        if status == 503:
            assert int(response.headers["retry-after"]) >= 1


_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(route=st.sampled_from(ROUTES), body=bodies | json_values)
def test_random_json_bodies(client, route, body):
    if route == "/recommend" and isinstance(body, dict):
        body = {key: value for key, value in body.items() if key != "explainer"}
    _check(
        client.post(route, content=json.dumps(body), headers={"content-type": "application/json"}),
        body,
    )


@_SETTINGS
@given(
    route=st.sampled_from(ROUTES),
    data=st.binary(max_size=300)
    | bodies.map(lambda b: json.dumps(b).encode()).flatmap(
        lambda raw: st.integers(0, len(raw)).map(lambda cut: raw[:cut])
    ),
    ctype=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]),
)
def test_random_bytes(client, route, data, ctype):
    """Random bytes, and real bodies cut short anywhere."""
    _check(client.post(route, content=data, headers={"content-type": ctype}), data)
