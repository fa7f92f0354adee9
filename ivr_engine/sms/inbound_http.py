"""The inbound SMS routes.

- ``POST`` (and ``GET``: Vonage and gateways may send the message as a query)
  ``/v1/sms/inbound/{provider}/{token}``: a provider hands over messages sent to our
  numbers. Proven by the door's PROVIDER check like a delivery report (``webhooks.py``: the
  provider's ``callback_token`` in the path; with ``verify_signature`` Twilio's
  ``X-Twilio-Signature`` or Vonage's signature too, else 403); only providers with
  ``inbound: true`` take them (404 otherwise). Each message is stored once (a provider's
  retry changes nothing), linked to the send it answers, an opt-out keyword puts the sender
  on the do-not-contact list, and the ``sms.received`` webhook is woken
  (``inbound_webhook.py``). Twilio is answered the empty TwiML ``<Response/>`` it expects
  (anything else is an error in its debugger), the others JSON.
- ``GET /v1/admin/sms/inbound`` (JSON, paged by id) and ``/v1/admin/sms/inbound.csv``
  (streamed like the sent-message search's CSV: ``searchhttp.stream_csv``): admin token.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any, Callable

from aiohttp import web
from prometheus_client import Counter

from ..api.principal import Principal
from ..api.problems import Problem
from ..api.routes import ADMIN, PROVIDER, ApiRoutes, Reply, query_of
from ..api.schemas import reply
from ..metrics import REGISTRY
from .inbound import InboundError, parse_inbound, reply_providers
from .inbound_repo import Policy, Stored
from .inbound_search import inbound_chunk, inbound_info
from .schemas import InboundAccepted, InboundMessage, InboundPage, InboundSearchQuery
from .search import PAGE_ROWS, SearchError, filters
from .searchhttp import CSV, stream_csv
from .ucontact import no_head

log = logging.getLogger("ivr_engine.sms")

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
RECEIVED = Counter("ivr_sms_inbound_messages", "Inbound SMS by provider and outcome (stored, "
                   "duplicate: a provider's retry, part: a part of a long message kept)",
                   ["provider", "outcome"], registry=REGISTRY)
ACCEPTED = Reply(InboundAccepted, "taken (stored, or stored before); a Twilio provider is "
                 f"answered `{TWIML}` as `text/xml` instead")
PROBLEMS = {403: "the provider signs its webhooks (`verify_signature`) and this request "
            "carries no valid signature",
            404: "this provider takes no inbound messages (`inbound: true`)",
            422: "not an inbound message this provider sends"}


def inbound_routes(config: Callable[[], Any], repo: Any, delivery: Any,
                   clock: Callable[[], dt.datetime]) -> ApiRoutes:
    """``repo``: the InboundRepo; ``delivery``: the engine's InboundDelivery (woken when a
    message is stored), or None (it looks every ``sms.inbound.poll_seconds``)."""
    routes = ApiRoutes("sms")

    async def take(request: web.Request, who: Principal) -> web.Response:
        sms = config().model.sms
        name = who.provider
        spec = next(p for p in sms.providers if p.name == name)
        if not spec.inbound:
            raise Problem(404, "Not found", f"provider {name} takes no inbound messages "
                          "(sms.providers[].inbound)")
        body = await request.read()
        try:
            messages = parse_inbound(spec, request.content_type, body, request.query,
                                     sms.default_region)
        except InboundError as exc:
            raise Problem(422, "Invalid message", str(exc)) from None
        now = clock()
        settings = sms.inbound
        base = Policy(stop_words=settings.stop_words, stop_scope=settings.stop_scope,
                      reply_providers=frozenset(),
                      since=now - dt.timedelta(hours=settings.reply_window_hours),
                      webhook=settings.webhook is not None)
        results: list[Stored] = []
        for m in messages:
            policy = dataclasses.replace(base, reply_providers=frozenset(
                reply_providers(sms, name, m.recipient)))
            results.append(got := await repo.receive(name, m, policy, now))
            outcome = "duplicate" if got.duplicate else "part" if got.id is None else "stored"
            RECEIVED.labels(name, outcome).inc()
            if got.stop is not None and got.dnc_added:
                log.info("inbound message %d from provider %s: opt-out keyword %s (%s): the "
                         "sender is on the do-not-contact list", got.id, name, got.stop.word,
                         got.stop.language)
        stored = sum(r.id is not None and not r.duplicate for r in results)
        if stored and delivery is not None and base.webhook:
            delivery.wake.set()
        if spec.type == "twilio":
            return web.Response(text=TWIML, content_type="text/xml")
        return reply(InboundAccepted(
            stored=stored, duplicates=sum(r.duplicate for r in results),
            parts_waiting=sum(r.id is None and not r.duplicate for r in results)))

    @routes.post("/v1/sms/inbound/{provider}/{token}", summary="A provider's inbound SMS",
                 security=PROVIDER, responses={200: ACCEPTED}, problems=PROBLEMS)
    async def receive_sms(request: web.Request, who: Principal) -> web.Response:
        """The URL to give Twilio (the number's "A message comes in" webhook), Vonage (the
        inbound SMS webhook), Infobip (the number's forward-to-URL) or a gateway, for a
        provider with `inbound: true`: the body as that provider sends it (Twilio form,
        Vonage form or JSON, Infobip JSON `results`, a url-* gateway's form or JSON object
        with its `inbound_fields`)."""
        return await take(request, who)

    @routes.get("/v1/sms/inbound/{provider}/{token}", summary="A provider's inbound SMS "
                "(as a query)", security=PROVIDER, responses={200: ACCEPTED},
                problems=PROBLEMS)
    async def receive_sms_query(request: web.Request, who: Principal) -> web.Response:
        """The same, for providers set to send the message as GET query parameters (Vonage's
        GET, Twilio's GET, a gateway's GET). HEAD is refused (405): it would store."""
        no_head(request, "store a message")
        return await take(request, who)

    def read(request: web.Request) -> tuple[InboundSearchQuery, Any]:
        q: InboundSearchQuery = query_of(request)
        try:
            return q, filters(start=q.start, end=q.end, campaign=q.campaign, number=q.number,
                              status=None, provider=q.provider,
                              region=config().model.sms.default_region, now=clock())
        except SearchError as exc:
            raise Problem(422, "Invalid request", str(exc), field=exc.field) from None

    @routes.get("/v1/admin/sms/inbound", summary="Search the messages received (JSON)",
                security=ADMIN, query=InboundSearchQuery, responses={200: InboundPage})
    async def search_inbound(request: web.Request, who: Principal) -> web.Response:
        """Messages received in [`from`, `to`) (ISO 8601; without an offset, UTC; default:
        the last 24 hours), narrowed by `number` (the sender, any format: normalised like a
        send), `campaign` (the campaign of the message it replies to; `-`: linked to none)
        and `provider`; oldest first, `limit` per page (at most 1000), the next page from
        `after` = the previous `next_after`."""
        q, f = read(request)
        rows = await repo.search(f, after=q.after or 0, limit=q.limit + 1)
        page = rows[:q.limit]
        return reply(InboundPage(start=f.start, end=f.end,
                                 messages=[InboundMessage(**inbound_info(r)) for r in page],
                                 next_after=page[-1].id if len(rows) > q.limit else None))

    @routes.get("/v1/admin/sms/inbound.csv", summary="Search the messages received (CSV)",
                security=ADMIN, query=InboundSearchQuery, responses={200: CSV})
    async def search_inbound_csv(request: web.Request, who: Principal) -> web.StreamResponse:
        """Every message the same filters find (`after` and `limit` are ignored), streamed:
        id, received_at, provider, message_id, sender, recipient, campaign, reply_to,
        stop_word, stop_language, webhook, webhook_attempts, webhook_error, text. Times in
        UTC ISO 8601."""
        _, f = read(request)
        return await stream_csv(request, "sms-inbound.csv", "SMS inbound CSV",
                                lambda after: repo.search(f, after=after, limit=PAGE_ROWS),
                                inbound_chunk)

    return routes
