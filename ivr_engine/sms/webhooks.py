"""Who may post a delivery report: the door's PROVIDER check for the SMS providers' callbacks.

A report comes to ``/v1/sms/reports/{provider}/{token}``; it is the provider's when
``{provider}`` names a configured provider and ``{token}`` is that provider's
``callback_token`` (compared in constant time; a provider without one accepts no report: 401).

With ``verify_signature`` the report must also carry the provider's signature (403
otherwise, counted in ``ivr_sms_report_signature_failures_total{provider}`` and logged
without any secret):

- **Twilio**: ``X-Twilio-Signature`` = base64(HMAC-SHA1(auth token, URL + each POST
  parameter's name and value, sorted by name)). The URL is the one Twilio called — the
  engine's public ``status_callback_url`` base and the path and query as received (behind a
  proxy the engine's own address is not what Twilio signed), with and without the scheme's
  default port (Twilio signs either). A JSON body is signed through ``bodySHA256`` in the
  query (its SHA-256, hex).
- **Vonage**, as the account signs (``signature_method``): the SMS API's ``sig`` parameter
  — the parameters but ``sig``, sorted, written ``&name=value`` (``&`` and ``=`` in values
  as ``_``), then MD5 of that and the secret (``md5hash``) or its HMAC keyed by the secret
  (``md5``, ``sha1``, ``sha256``, ``sha512``), hex; or ``jwt``: ``Authorization: Bearer``
  a JWT signed HS256 with the signature secret whose ``payload_hash``, when present, is the
  body's SHA-256. Either way the report's time (``timestamp``, ``iat``) must be within
  5 minutes of the engine's clock: a captured report cannot be replayed later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

import jwt
from aiohttp import web

from .. import metrics
from ..api.auth import key_matches
from ..api.problems import Problem
from .reports import ReportError, report_fields

log = logging.getLogger("ivr_engine.sms")

MAX_SKEW = 300.0  # seconds: a signed report's own time may differ this much from ours
DEFAULT_PORTS = {"https": 443, "http": 80}


def provider_check(config: Callable[[], Any],
                   clock: Callable[[], float] = time.time) -> Callable[[web.Request], Any]:
    """The door's ``ProviderCheck`` over the current config's SMS providers."""

    async def check(request: web.Request) -> str | None:
        name = request.match_info.get("provider")
        token = request.match_info.get("token")
        if name is None or token is None:
            return None
        spec = next((p for p in config().model.sms.providers if p.name == name), None)
        presented = token.encode("utf-8", "surrogatepass")
        if not key_matches(presented, spec.callback_token if spec is not None else None):
            return None
        assert spec is not None
        if spec.verify_signature:
            body = await request.read()  # bounded by the app's client_max_size
            why = (_twilio(spec, request, body) if spec.type == "twilio"
                   else _vonage(spec, request, body, clock()))
            if why is not None:
                metrics.SMS_REPORT_SIGNATURE_FAILURES.labels(name).inc()
                log.warning("delivery report for provider %s from %s refused: %s", name,
                            request.remote, why)
                raise Problem(403, "Forbidden", "this report does not carry a valid "
                              f"signature of provider {name}")
        return name

    return check


# ---------------------------------------------------------------- Twilio

def twilio_signature(auth_token: str, url: str, params: Mapping[str, list[str]]) -> str:
    """What Twilio puts in ``X-Twilio-Signature`` for a request to ``url`` with ``params``
    (each name with its values)."""
    data = url + "".join(name + value for name in sorted(params)
                         for value in sorted(set(params[name])))
    mac = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def _same(expected: str, presented: str) -> bool:
    """Constant-time, whatever bytes were presented."""
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "surrogatepass"))


def _port_variants(url: str) -> set[str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    default = DEFAULT_PORTS.get(parts.scheme)
    userinfo = parts.netloc.rpartition("@")[0]
    userinfo = userinfo + "@" if userinfo else ""
    with_port = f"{userinfo}{host}:{parts.port or default}" if default or parts.port else None
    out = {url, urlunsplit(parts._replace(netloc=f"{userinfo}{host}"))}
    if with_port:
        out.add(urlunsplit(parts._replace(netloc=with_port)))
    return out


def _twilio(spec: Any, request: web.Request, body: bytes) -> str | None:
    presented = request.headers.get("X-Twilio-Signature")
    if not presented:
        return "no X-Twilio-Signature header"
    url = spec.status_callback_url.rstrip("/") + request.raw_path
    query = parse_qs(urlsplit(url).query)
    params: dict[str, list[str]] = {}
    if "bodySHA256" in query:  # a JSON body: the URL is signed, the body through its hash
        if not _same(hashlib.sha256(body).hexdigest(), query["bodySHA256"][0]):
            return "the body does not match bodySHA256"
    elif request.content_type == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return "the form is not UTF-8"
        for name, value in pairs:
            params.setdefault(name, []).append(value)
    token = spec.password.get_secret_value() if spec.password else ""
    if not any(_same(twilio_signature(token, u, params), presented)
               for u in _port_variants(url)):
        return "X-Twilio-Signature does not match (auth token, or status_callback_url not " \
               "the URL the provider called)"
    return None


# ---------------------------------------------------------------- Vonage

def vonage_sig(secret: str, method: str, params: Mapping[str, Any]) -> str:
    """The SMS API's ``sig`` of ``params`` (``sig`` itself left out), lower-case hex."""
    text = "".join(f"&{name}={str(params[name]).replace('&', '_').replace('=', '_')}"
                   for name in sorted(params) if name != "sig")
    if method == "md5hash":
        return hashlib.md5((text + secret).encode()).hexdigest()
    return hmac.new(secret.encode(), text.encode(), method).hexdigest()


def _fresh(when: Any, now: float) -> bool:
    try:
        return abs(float(when) - now) <= MAX_SKEW
    except (TypeError, ValueError):
        return False


def _vonage(spec: Any, request: web.Request, body: bytes, now: float) -> str | None:
    secret = spec.signature_secret.get_secret_value()
    if spec.signature_method == "jwt":
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "no signed JWT in Authorization"
        try:
            claims = jwt.decode(token.strip(), secret, algorithms=["HS256"],
                                options={"require": ["iat"], "verify_aud": False})
        except jwt.PyJWTError as exc:
            return f"the JWT is not signed with the signature secret ({type(exc).__name__})"
        if not _fresh(claims.get("iat"), now):
            return "the JWT's iat is more than 5 minutes away"
        digest = claims.get("payload_hash")
        if digest is not None and not _same(hashlib.sha256(body).hexdigest(),
                                            str(digest).lower()):
            return "the body does not match the JWT's payload_hash"
        return None
    try:
        fields = report_fields(request.content_type, body, request.query)
    except ReportError as exc:
        return f"the signed parameters cannot be read ({exc})"
    presented = fields.get("sig")
    if not isinstance(presented, str) or not presented:
        return "no sig parameter"
    if not _fresh(fields.get("timestamp"), now):
        return "the timestamp is missing or more than 5 minutes away"
    expected = vonage_sig(secret, spec.signature_method, fields)
    if not _same(expected, presented.lower()):
        return f"sig does not match ({spec.signature_method} with the signature secret)"
    return None
