"""Configuration models of the mobile apps (push credentials, PSTN fallback, SMS links,
blocking) and of the users they wake up (``user:<name>`` targets, push-then-wait settings,
the database users' directory).
"""

# ruff: noqa: RUF012 - pydantic fields; ruff cannot see that _Model (fields.py) is a BaseModel

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from .fields import (
    E164,
    DestinationField,
    Language,
    MediaList,
    Name,
    Secret,
    _Model,
)
from .model_texts import InAppTexts

# --------------------------------------------------------------------------- mobile apps


class ApnsCredentials(_Model):
    key_file: str | None = None  # .p8 token key
    key_id: str | None = None
    team_id: str | None = None
    certificate_file: str | None = None  # or a PEM certificate (with its key)
    sandbox: bool = False
    url: str | None = None  # provider base URL (https://host:port); default per sandbox flag
    ca_file: str | None = None  # CA bundle to verify that URL (tests with a local server)


class FcmCredentials(_Model):
    service_account_file: str | None = None
    url: str | None = None  # provider base URL (tests point it at a local server)


class PushCredentials(_Model):
    apns: ApnsCredentials | None = None
    fcm: FcmCredentials | None = None


class SmsLinks(_Model):
    enabled: bool = False
    app_store_url: str | None = None
    play_store_url: str | None = None
    # the engine serves the links (/l/<app>/open, /l/<app>/install) at this public address
    base_url: str | None = Field(None, pattern=r"^https://[^/\s]+(/[^\s]*)?$")
    apple_team_id: str | None = Field(None, pattern=r"^[A-Z0-9]{10}$")  # apple-app-site-assoc.
    android_cert_sha256: list[str] = []  # assetlinks.json: the signing certificates' SHA-256
    install_text: str = Field("Install {app}: {link}", max_length=300)
    open_text: str = Field("Open {app}: {link}", max_length=300)


class TokenGuessing(_Model):
    """Wrong fallback tokens tolerated in a sliding window before calls are treated as
    outside the app: per caller number, and per app whatever the number (caller ID can be
    spoofed). See README "Guessing tokens" for the bound this gives."""

    per_caller: int = Field(3, ge=1, le=1000)
    per_app: int = Field(30, ge=1, le=100_000)
    window_seconds: float = Field(600.0, ge=10, le=86_400)
    # while an app is attacked (per_app reached), plans get tokens this much longer and short
    # ones are refused: see apps/guard.py
    hardened_extra_digits: int = Field(4, ge=2, le=6)


class OfflineCodes(_Model):
    """Offline fallback codes: at login a session gets an HOTP secret (RFC 4226); with no data
    path at all the app dials the fallback number then ``<session>*<code>#`` as post-dial
    DTMF, the code computed on the phone from the secret and a counter. The engine accepts a
    counter up to ``look_ahead`` past the last one accepted, each code once, and binds the
    call to the session's user (no custom data: the app could ask for no plan)."""

    enabled: bool = True
    digits: int = Field(8, ge=6, le=8)
    look_ahead: int = Field(5, ge=1, le=20)


class AppFallback(_Model):
    number: E164 | None = None
    threshold: float | None = Field(None, ge=0, le=1)
    match: Literal["token", "caller", "token-or-caller"] = "token"
    token_ttl_seconds: int = Field(180, ge=30, le=3600)
    token_digits: int = Field(6, ge=4, le=10)
    token_wait_seconds: float = Field(8.0, gt=0, le=30)
    guessing: TokenGuessing = TokenGuessing()
    offline: OfflineCodes = OfflineCodes()


class UserAssertion(_Model):
    """How the app's users are proven at login: the customer's backend signs a JWT naming
    the user (``sub``), for this app (``aud``: the app's name), with ``iss``, ``iat``,
    ``exp`` and a single-use ``jti``; the engine verifies it with the one algorithm pinned
    here (``none`` and any other algorithm are refused). HS256 takes the shared ``secret``;
    RS256, ES256 and EdDSA a PEM ``public_key_file`` or a ``jwks_file`` (the key chosen by the
    token's ``kid``). An HS256 ``secret`` left empty (``${VAR:-}``) shuts logins, as an
    empty ``api_key`` shuts the app's SDK routes."""

    algorithm: Literal["HS256", "RS256", "ES256", "EdDSA"]
    secret: Secret = None
    public_key_file: str | None = None
    jwks_file: str | None = None
    issuer: str = Field(min_length=1, max_length=256)
    max_age_seconds: int = Field(300, ge=10, le=3600,
                                 description="an assertion lives at most this long after iat")
    leeway_seconds: int = Field(30, ge=0, le=300, description="clock skew tolerated")

    @model_validator(mode="after")
    def _key(self) -> "UserAssertion":
        files = [k for k in ("public_key_file", "jwks_file") if getattr(self, k)]
        if self.algorithm == "HS256":
            if files:
                raise ValueError(f"HS256 takes secret only, not {files[0]}")
        else:
            if self.secret is not None:
                raise ValueError(f"{self.algorithm} verifies with a public key: give "
                                 "public_key_file or jwks_file, not secret")
            if len(files) != 1:
                raise ValueError(f"{self.algorithm} needs exactly one of public_key_file, "
                                 "jwks_file")
        return self


class BlockOutside(_Model):
    enabled: bool = False
    message: Name | None = None


class AppLogin(_Model):
    """The app's own ``lifecycle.login`` choices (unset: the ``lifecycle:`` section's)."""

    confirm_takeover: bool | None = None


_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_ICE = re.compile(r"^(stuns?|turns?):[^\s;,'\"]+$")


class WebWidget(_Model):
    """The web widget at ``/w/<app>`` (``edge/widget.py``): the app's visual IVR on a web
    page; a click on an entry places a WebRTC call (SIP over secure WebSocket to Asterisk)
    deep-linked to that node. Off unless enabled: its call plans need no key."""

    enabled: bool = False
    # Asterisk's SIP over WebSocket (http.conf TLS + pjsip.conf transport-wss)
    sip_wss_url: str = Field("wss://127.0.0.1:8443/ws", pattern=r"^wss://[^/\s?#]+(/[^\s?#]*)?$")
    sip_domain: str = Field("127.0.0.1", pattern=r"^[A-Za-z0-9.:\[\]-]{1,253}$")
    sip_user: Name = "webvisitor"  # the WebRTC endpoint (pjsip.conf webrtc-endpoint)
    # STUN/TURN servers the browser uses (stun:host:port, turn:host:port?transport=udp)
    ice_servers: list[str] = Field([], max_length=8)
    # CSP frame-ancestors: the sites that may embed the page in an iframe (empty: none)
    frame_ancestors: list[str] = Field([], max_length=32)
    # origins whose scripts may call the widget's JSON routes (CORS); empty: same origin only
    cors_origins: list[str] = Field([], max_length=32)

    @model_validator(mode="after")
    def _origins(self) -> "WebWidget":
        for key in ("frame_ancestors", "cors_origins"):
            for item in getattr(self, key):
                if not _ORIGIN.match(item):
                    raise ValueError(f"{key}: {item!r} is not an origin like "
                                     "https://www.example.com")
        for item in self.ice_servers:
            if not _ICE.match(item):
                raise ValueError(f"ice_servers: {item!r} is not a stun: or turn: URL")
        return self


class App(_Model):
    # the switch (the seed's "Off / Active" toggle): an app is active when it is on and the
    # app has a mobile-app access point in both structures (config/apps.py)
    active: bool = True
    ios_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
    android_id: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+$")
    push: PushCredentials = PushCredentials()
    sms_links: SmsLinks = SmsLinks()
    fallback: AppFallback = AppFallback()
    block_outside_calls: BlockOutside = BlockOutside()
    languages: list[Language] = []  # first = the app's default language
    messages: dict[Name, dict[Language, MediaList]] = {}
    texts: InAppTexts = InAppTexts()  # in-app texts overriding the engine's (texts:)
    api_key: Secret = None  # proves the app (never a user) as a Bearer token; unset: refused
    user_assertion: UserAssertion | None = None  # unset: logins are refused
    login: AppLogin = AppLogin()
    widget: WebWidget = WebWidget()


class WakeupSettings(_Model):
    """Push-then-wait: how long to wait for a sleeping app to register, and what the caller
    hears meanwhile. The wait budget is loops × interval (3 × 5 s = 15 s by default)."""

    mobile_loops: int = Field(3, ge=1, le=60)  # ringing device "mobile"
    uc_mobile_loops: int = Field(3, ge=1, le=60)  # ringing device "uc+mobile"
    interval_seconds: float = Field(5.0, gt=0, le=60)
    hold: Literal["moh", "ringback"] = "moh"
    moh_class: Name = "default"
    message: Name | None = None  # played to the caller first
    ring_seconds: int = Field(30, ge=5, le=600)  # how long a reached device rings


class WakeupOverride(_Model):
    mobile_loops: int | None = Field(None, ge=1, le=60)
    uc_mobile_loops: int | None = Field(None, ge=1, le=60)
    interval_seconds: float | None = Field(None, gt=0, le=60)
    hold: Literal["moh", "ringback"] | None = None
    moh_class: Name | None = None
    message: Name | None = None
    ring_seconds: int | None = Field(None, ge=5, le=600)


class User(_Model):
    """Someone a call can be sent to with ``user:<name>``."""

    ringing_device: Literal["mobile", "uc", "uc+mobile"] = "mobile"
    mobile_endpoint: Name | None = None  # PJSIP endpoint (and AOR) the mobile app registers
    uc_endpoint: Name | None = None  # desk / web client endpoint
    app: Name | None = None  # the mobile app whose push credentials wake the phone
    no_answer: DestinationField | None = None  # default: voicemail:<user>@default
    wakeup: WakeupOverride = WakeupOverride()


class UserImports(_Model):
    """Bounds of a users CSV import (``POST /v1/admin/users/import``, ``ivr-engine users
    import``): past them the file is refused whole."""

    max_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    max_rows: int = Field(100_000, ge=1, le=1_000_000)
    max_line_bytes: int = Field(4096, ge=256, le=65_536)


class UserDirectorySettings(_Model):
    """Users kept in the database (the users API, ``ivr-engine users``) beside ``users:``;
    on a name in both, the database's wins."""

    imports: UserImports = UserImports()
