"""The ``sms:`` section: providers, dialers, campaigns, the single-send lane.

Field rules live here; references between them and to ``schedules`` are checked in
``config/sms.py``.
"""

# ruff: noqa: RUF012 - pydantic fields

from __future__ import annotations

import re
from typing import Annotated, Literal

import phonenumbers
from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator

from ..sms.numbers import parse_channels
from .fields import Language, Name, Secret, _blank_secret_is_unset, _Model

PROVIDER_TYPES = ("twilio", "vonage", "infobip", "url-get", "url-get-auth", "url-post",
                  "url-post-auth")
# the providers' public API hosts; Infobip gives each account its own base URL
DEFAULT_URLS = {"twilio": "https://api.twilio.com", "vonage": "https://rest.nexmo.com"}
# how a Vonage account signs its webhooks (dashboard: "signature method"): the SMS API's
# `sig` parameter (md5hash: MD5 of the parameters and the secret; the others: an HMAC), or
# a JWT in Authorization (Messages, Voice: HS256)
VONAGE_SIGNATURES = ("md5hash", "md5", "sha1", "sha256", "sha512", "jwt")
# inbound messages of the url-* types: the request's field names (form, JSON or query)
INBOUND_FIELDS = {"from": "from", "to": "to", "text": "text", "id": "id"}
# opt-out keywords, per language: Twilio's standard English list, and the usual words
DEFAULT_STOP_WORDS = {
    "en": ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"),
    "es": ("BAJA", "ALTO", "PARAR", "CANCELAR"),
    "pt": ("SAIR", "PARAR", "CANCELAR"),
    "fr": ("STOP", "ARRET"),
}


def _one_word(v: str) -> str:
    if not v or len(v) > 32 or len(v.split()) != 1:
        raise ValueError(f"{v[:40]!r}: a stop word is one word of at most 32 characters")
    return v


StopWord = Annotated[str, AfterValidator(_one_word)]


class SmsProvider(_Model):
    name: Name
    type: Literal["twilio", "vonage", "infobip", "url-get", "url-get-auth", "url-post",
                  "url-post-auth"]
    url: str | None = Field(None, pattern=r"^https?://",
                            description="base URL (twilio, vonage, infobip) or the endpoint "
                            "(url-*)")
    user: str | None = None  # Twilio account SID, Vonage api_key, basic-auth user
    password: SecretStr | None = None  # Twilio auth token, Vonage api_secret, Infobip API key
    sender: str | None = Field(None, max_length=32)  # From: a number or an alphanumeric id
    number_regexp: str | None = None  # matched against the number before sending
    # what number_regexp sees: +59899635199 (e164) or 099635199 as dialled in default_region
    match_on: Literal["e164", "national"] = "e164"
    encoding: Literal["auto", "gsm7", "ucs2"] = "auto"
    rate: float | None = Field(None, gt=0, le=100_000, description="send-rate cap per second")
    rate_unit: Literal["segments", "messages"] = "segments"
    default: bool = False
    # url-* types: the query (GET) or form (POST) fields, with {to} {to_digits} {text} {from}
    # {channel} {id} {encoding} substituted
    params: dict[str, str] = {}
    message_id_field: str | None = None  # url-*: the JSON key of the answer with the id
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    unknown_outcome: Literal["fail", "resend"] = "fail"  # a crash's unresolved sends
    status_callback_url: str | None = Field(None, pattern=r"^https?://")  # this engine's base
    callback_token: Secret = None  # in the delivery-report URL the provider calls
    # delivery reports must carry the provider's signature (sms/webhooks.py): Twilio's
    # X-Twilio-Signature with `password` (the auth token); Vonage's with signature_secret
    verify_signature: bool = False
    signature_secret: SecretStr | None = None  # Vonage: the account's signature secret
    signature_method: Literal["md5hash", "md5", "sha1", "sha256", "sha512", "jwt"] = "md5hash"
    # inbound messages at /v1/sms/inbound/<name>/<callback_token> (sms/inbound.py)
    inbound: bool = False
    inbound_fields: dict[Literal["from", "to", "text", "id"], str] = {}  # url-*: field names
    # url-*: a number without + is read in sms.default_region (national), or is
    # international digits (as Vonage and Infobip write them)
    inbound_numbers: Literal["national", "international"] = "national"

    @field_validator("password", "signature_secret", mode="before")
    @classmethod
    def _secret(cls, v: object) -> object:
        return _blank_secret_is_unset(v)

    @model_validator(mode="after")
    def _inbound(self) -> "SmsProvider":
        url = self.type.startswith("url-")
        if (self.inbound_fields or self.inbound_numbers != "national") and not url:
            raise ValueError("inbound_fields and inbound_numbers are for url-* providers: "
                             f"a {self.type} provider's inbound format is its own")
        if self.inbound and self.callback_token is None:
            raise ValueError("inbound: true needs callback_token (the secret in the URL the "
                             "provider calls)")
        if self.inbound and self.type == "twilio" and not self.verify_signature:
            raise ValueError("inbound: true on a twilio provider needs verify_signature: true "
                             "(Twilio signs every webhook; status_callback_url is the public "
                             "base it calls)")
        return self

    @model_validator(mode="after")
    def _signatures(self) -> "SmsProvider":
        if self.signature_secret is not None and self.type != "vonage":
            raise ValueError("signature_secret is Vonage's signature secret: a "
                             f"{self.type} provider has none")
        if not self.verify_signature:
            return self
        if self.type not in ("twilio", "vonage"):
            raise ValueError(f"verify_signature: {self.type} does not sign its delivery "
                             "reports (only twilio and vonage do)")
        if not self.status_callback_url or self.callback_token is None:
            raise ValueError("verify_signature needs status_callback_url (the URL the "
                             "provider signs) and callback_token")
        if self.type == "vonage" and self.signature_secret is None:
            raise ValueError("verify_signature on a vonage provider needs signature_secret "
                             "(the account's signature secret)")
        return self

    @field_validator("number_regexp")
    @classmethod
    def _regexp(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"{v!r} is not a regular expression: {exc}") from None
        return v

    @property
    def base_url(self) -> str | None:
        return (self.url or DEFAULT_URLS.get(self.type, "") or None)


class SmsDialer(_Model):
    provider: Name | None = None  # unset: the default provider
    schedule: Name | None = None  # a schedule under schedules; unset: always
    enabled: bool = True
    dnc_check: bool = True
    spacing_ms: int = Field(0, ge=0, le=3_600_000)  # time between messages
    dial_string: str | None = None  # channels to rotate: 0-3, 0,2,5
    batch: int = Field(50, ge=1, le=50)
    pipelines: int = Field(4, ge=1, le=16)  # batches in flight at once at 0 ms spacing

    @field_validator("dial_string")
    @classmethod
    def _dial(cls, v: str | None) -> str | None:
        parse_channels(v)
        return v


class SmsCampaign(_Model):
    dialer: Name


class SmsUploads(_Model):
    """The CSV uploads (HTTP and ``ivr-engine sms upload``): a file is checked while it is
    spooled to a temporary file, then imported in one transaction; past ``max_bytes`` or
    ``max_rows`` it is refused (413), a line longer than ``max_line_bytes`` is a bad line."""

    max_bytes: int = Field(100 * 1024 * 1024, ge=1024, le=4 * 1024 ** 3)
    max_line_bytes: int = Field(16 * 1024, ge=128, le=1024 * 1024)
    max_rows: int = Field(100_000, ge=1, le=10_000_000)


class SmsInboundWebhook(_Model):
    """Where each inbound message is POSTed (``sms.received``), signed like the context
    webhook; retried with a growing delay until delivered or ``max_age_hours`` old."""

    url: str = Field(pattern=r"^https?://")
    secret: Secret = None  # HMAC-SHA256 of the body in X-IVR-Signature
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    backoff_seconds: float = Field(1.0, gt=0, le=600)  # the first retry's delay, then doubled
    max_backoff_seconds: float = Field(300.0, gt=0, le=86_400)
    max_age_hours: float = Field(72.0, gt=0, le=24 * 30)  # then given up (state failed)


class SmsInbound(_Model):
    """Inbound messages: replies linked to what was sent, opt-out keywords, the webhook."""

    # a reply belongs to the newest message sent to its number within this window
    reply_window_hours: float = Field(72.0, ge=0, le=24 * 365)
    # opt-out keywords per language, matched on the first word (case and accents ignored)
    stop_words: dict[Language, tuple[StopWord, ...]] = DEFAULT_STOP_WORDS
    # all: the number leaves every campaign; campaign: only the one the reply is linked to
    # (every campaign when it is linked to none)
    stop_scope: Literal["all", "campaign"] = "all"
    webhook: SmsInboundWebhook | None = None
    poll_seconds: float = Field(1.0, ge=0.05, le=60)  # messages another engine stored


class SmsSettings(_Model):
    default_region: str | None = None  # ISO 3166 country for national numbers (UY, FR, US)
    providers: list[SmsProvider] = []
    dialers: dict[Name, SmsDialer] = {}
    campaigns: dict[Name, SmsCampaign] = {}
    single_provider: Name | None = None  # single sends; unset: the default provider
    in_engine: bool = False  # run the dialers inside `ivr-engine run`
    poll_seconds: float = Field(0.1, ge=0.01, le=10)  # the single lane's spool check
    lease_seconds: float = Field(60.0, ge=5, le=3600)  # another worker's send left unresolved
    uploads: SmsUploads = SmsUploads()
    inbound: SmsInbound = SmsInbound()

    @field_validator("default_region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is not None and v.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{v!r} is not a region code like UY, FR or US")
        return v.upper() if v else v
