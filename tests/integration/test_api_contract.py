"""The API contract, property-tested against a live engine: schemathesis generates requests
from the engine's own ``/openapi.json`` (valid and invalid ones) and checks every answer
against the document — zero 5xx, documented status codes, content types, headers and
schemas. Then the same without credentials: every non-public route answers a documented 401.

The engine is the real process on loopback (``engine_proc.start_engine``) with the apps
fixture (its keys, its admin token, its apps' backends signing user assertions) plus two
users, so sessions, device registrations and test pushes get past "unknown user" (the
fixture's push credential files
do not exist: a test push answers without reaching any provider). It connects to Asterisk as
an ARI application of its own, so it neither takes over nor is taken over by an engine that
other tests run against the same sandbox; no call is placed. Bounded: a fixed number of
examples per operation and mode, about 30 s in all.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import Counter

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.identity import assertion

from .conftest import SANDBOX_SCRIPT, Sandbox, _parse_env
from .engine_proc import REPO, app_connected, start_engine

# the slowest test that needs Asterisk, and it places no call: it runs beside the live tests
pytestmark = [pytest.mark.sandbox, pytest.mark.beside]

APPS = REPO / "tests" / "fixtures" / "apps.yaml"
USERS = """
users:
  alice: {mobile_endpoint: alice, app: customer}
  sam: {mobile_endpoint: sam, app: staff}
"""
KEYS = {"customer": "customer-key-000000000000000000000000000", "staff": "staff-key-000000000000000000000000000000", "legacy": "legacy-key-00000000000000000000000000000"}
USER_OF = {"customer": "alice", "staff": "sam"}
ADMIN_TOKEN = "admin-secret-000000000000000000000000000"
ARI_APP = "ivr-api-contract"
# per operation and generation mode, with credentials (IVR_CONTRACT_EXAMPLES: a deeper run)
EXAMPLES = int(os.environ.get("IVR_CONTRACT_EXAMPLES", "30"))
UNAUTHENTICATED_EXAMPLES = 15  # per non-public operation
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
CONFORMANCE = {c.__name__ for c in CHECKS}


@pytest.fixture(scope="module")
def live_sandbox(request) -> Sandbox:
    """The sandbox Asterisk: as it runs when it already does (``up`` would re-install and
    reload its configs under whatever else uses it), else brought up by the ``sandbox``
    fixture."""
    status = subprocess.run([str(SANDBOX_SCRIPT), "status"], capture_output=True, timeout=60)
    if status.returncode != 0:
        return request.getfixturevalue("sandbox")
    env = subprocess.run([str(SANDBOX_SCRIPT), "env"], capture_output=True, text=True,
                         timeout=60, check=True)
    values = _parse_env(env.stdout)
    return Sandbox(
        ari_url=values.get("IVR_ARI_URL", "http://127.0.0.1:8088"),
        ari_username=values.get("IVR_ARI_USERNAME", "ivr-engine"),
        ari_password=values["IVR_ARI_PASSWORD"],
        ami_host="127.0.0.1", ami_port=int(values.get("IVR_AMI_PORT", "5038")),
        ami_username=values.get("IVR_AMI_USERNAME", "ivr-engine"),
        ami_password=values.get("IVR_AMI_PASSWORD", ""),
        sip_password=values.get("IVR_SIP_PASSWORD", ""))


@pytest.fixture(scope="module")
async def engine(live_sandbox, tmp_path_factory):
    deadline = time.monotonic() + 120
    while app_connected(live_sandbox, ARI_APP):  # another run of this test holds it
        if time.monotonic() > deadline:
            pytest.fail(f"another process holds the ARI application {ARI_APP!r}")
        await asyncio.sleep(5)
    work = tmp_path_factory.mktemp("api-contract")
    config = work / "apps.yaml"
    text = APPS.read_text().replace("  ari:\n", f"  ari:\n    app: {ARI_APP}\n", 1)
    assert f"app: {ARI_APP}" in text
    # one client sends everything here, as fast as it can: every limit would answer most
    # with 429 (the limits have tests of their own: tests/unit/test_api_ratelimit.py)
    text = text.replace("  api:\n", "  api:\n    rate_limit:\n" + "".join(
        f"      {name}: {{rate: 10000, burst: 10000}}\n" for name in
        ("per_address", "failed_credentials", "per_user", "per_client", "per_app")), 1)
    config.write_text(text + USERS)
    missing = str(work / "absent")  # no push provider is ever reached
    eng = await start_engine(live_sandbox, work, config=config, extra_env={
        "IVR_ADMIN_TOKEN": ADMIN_TOKEN, "IVR_CUSTOMER_API_KEY": KEYS["customer"],
        "IVR_STAFF_API_KEY": KEYS["staff"], "IVR_LEGACY_API_KEY": KEYS["legacy"],
        "IVR_TEST_FCM_SA": missing, "IVR_TEST_APNS_KEY": missing})
    try:
        yield eng
    finally:
        await eng.stop()


class Run:
    """Sends schemathesis cases and records every answer and every failed check."""

    def __init__(self, base_url: str, document: dict):
        self.base_url = base_url
        self.session_http = requests.Session()
        self.security = {(m.upper(), p): [next(iter(alt)) for alt in op["security"]]
                         for p, item in document["paths"].items() for m, op in item.items()}
        self.sessions: dict[str, str] = {}
        self.requests = 0
        self.statuses: Counter = Counter()
        self.by_route: Counter = Counter()
        self.failures: list[str] = []

    def session(self, app: str, fresh: bool = False) -> str:
        """A session token of the app's user (logged in as the SDK does)."""
        if fresh or app not in self.sessions:
            body = {"assertion": assertion(app, USER_OF[app]), "device_id": "contract",
                    "platform": "mobile", "app_type": "Mobile", "app_version": "1.0",
                    "os": "android", "os_version": "14"}
            r = self.session_http.post(f"{self.base_url}/v1/apps/{app}/sessions", json=body,
                                       headers={"Authorization": f"Bearer {KEYS[app]}"},
                                       timeout=10)
            assert r.status_code == 201, r.text
            self.sessions[app] = r.json()["token"]
        return self.sessions[app]

    def credential(self, case, app: str | None) -> str | None:
        """The credential the case's route needs; valid bodies naming an app and a user are
        steered, for part of the examples, to a configured app and its user (random names
        only ever reach "unknown app")."""
        schemes = self.security[(case.method.upper(), case.path)]
        positive = case.meta is not None and case.meta.generation.mode.is_positive
        if positive and app is not None and isinstance(case.body, dict) and "app" in case.body:
            case.body["app"] = app
            if "user" in case.body:
                case.body["user"] = USER_OF.get(app, "nobody")
        named = (case.path_parameters or {}).get("app")
        if "adminToken" in schemes:
            return ADMIN_TOKEN
        if "session" in schemes and (named in USER_OF or named is None) and \
                (app in USER_OF or "appKey" not in schemes):
            owner = named or "customer"
            # a logout ends its session: each one gets a session of its own
            return self.session(owner, fresh=case.method.upper() == "DELETE")
        if "appKey" in schemes:
            if named is None:
                return KEYS.get(app or "customer", "no-such-key")
            return KEYS.get(named, "no-such-key") if isinstance(named, str) else "no-such-key"
        return None

    def send(self, case, authorization: str | None, expect_401: bool = False) -> None:
        headers = {"Authorization": f"Bearer {authorization}"} if authorization else {}
        response = case.call(base_url=self.base_url, session=self.session_http,
                             headers=headers)
        self.requests += 1
        self.statuses[response.status_code] += 1
        self.by_route[f"{case.method.upper()} {case.path} {response.status_code}"] += 1
        # a negative case must be refused when its invalid part reaches the engine: a body or
        # a path. An invalid query can vanish on the wire (an empty-named property, an empty
        # array of an optional parameter are simply not sent): the request is then valid and
        # a 200 is right. The query parameters' hostile values are tests/unit/test_api_fuzz.py
        # (every route's query parameters, valid credentials) and test_api_hostile_input.py.
        negative = (case.meta is not None and case.meta.generation.mode.is_negative
                    and any(case.meta.is_negative_at(where) for where in
                            (ParameterLocation.BODY, ParameterLocation.PATH)))
        checks = CHECKS + ([negative_data_rejection] if negative else [])
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (Failure, FailureGroup) as exc:  # collected, reported at the end
            found = exc.exceptions if isinstance(exc, FailureGroup) else (exc,)
            for failure in found:
                self.failures.append(f"{case.method.upper()} {case.path} -> "
                                     f"{response.status_code}: {failure.title}: "
                                     f"{failure.message[:400]}")
        if expect_401 and response.status_code != 401:
            self.failures.append(f"{case.method.upper()} {case.path} without credential -> "
                                 f"{response.status_code}")


def drive(strategy, examples: int, action) -> None:
    @settings(max_examples=examples, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy, app=st.sampled_from(["customer", "staff", "legacy", None]))
    def run(case, app):
        action(case, app)

    run()


def contract_run(base_url: str) -> Run:
    document = requests.get(f"{base_url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    run = Run(base_url, document)
    # devices first: test pushes then find some registered
    ops = sorted((r.ok() for r in schema.get_all_operations()),
                 key=lambda op: (op.path != "/v1/devices", op.path, op.method))
    for op in ops:
        public = not run.security[(op.method.upper(), op.path)]
        raw = document["paths"][op.path][op.method.lower()]
        # else no invalid request (a public route's string path parameters have no invalid
        # value: a protected one's invalid requests come from its credential)
        negatable = "requestBody" in raw or ("parameters" in raw and not public)
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if negatable else [])
        for mode in modes:
            if op.path == "/v1/apps/{app}/calls":
                strategy = st.one_of(*[op.as_strategy(mode, path_parameters={"app": name})
                                       for name in KEYS], op.as_strategy(mode))
            else:
                strategy = op.as_strategy(mode)
            drive(strategy, EXAMPLES,
                  lambda case, app: run.send(case, run.credential(case, app)))
        if not public:  # without the credential: a documented 401, whatever is sent
            drive(op.as_strategy(GenerationMode.POSITIVE), UNAUTHENTICATED_EXAMPLES,
                  lambda case, app: run.send(case, None, expect_401=True))
    return run


async def test_live_engine_conforms_to_its_openapi_document(engine):
    started = time.monotonic()
    run = await asyncio.to_thread(contract_run, engine.api_url)
    elapsed = time.monotonic() - started
    five_xx = sum(n for status, n in run.statuses.items() if status >= 500)
    print(f"\nschemathesis: {run.requests} requests in {elapsed:.1f} s, {five_xx} answered 5xx, "
          f"{len(run.failures)} conformance failures; by status: "
          + ", ".join(f"{s}: {n}" for s, n in sorted(run.statuses.items())))
    for line in sorted(run.by_route):
        print(f"  {line}: {run.by_route[line]}")
    assert run.failures == [], "\n".join(run.failures[:20])
    assert five_xx == 0
    assert run.statuses[401] >= UNAUTHENTICATED_EXAMPLES  # the unauthenticated pass ran
    # the credentials opened the routes: successes on every kind of route
    assert {200, 201}.issubset(run.statuses)
    assert "Traceback" not in engine.log()
