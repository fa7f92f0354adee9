"""The typed ARI REST calls, independent of how a request reaches Asterisk.

:class:`AriRest` holds every REST method (channels, playbacks, bridges, applications,
endpoints) written only against one abstract coroutine, :meth:`AriRest.request`.  A transport
subclasses it and implements ``request``: :class:`~.client.AriClient` does it over HTTP
(aiohttp); another transport (e.g. ARI REST over the events websocket) can reuse every method
unchanged.

Methods return the decoded JSON (or None for empty bodies) and raise :class:`~.errors.AriError`
(:class:`~.errors.AriNotFound` for 404) on any non-2xx answer; transport failures (connection
refused, timeout, reset) raise :class:`~.errors.AriError` with ``status == 0``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from .errors import AriError, AriNotFound

__all__ = ["AriRest"]


def _q(segment: str) -> str:
    """Quote one URL path segment (ids may contain anything)."""
    return quote(str(segment), safe="")


def _params(**kwargs: Any) -> list[tuple[str, str]]:
    """Query parameters without the Nones, booleans as ARI's true/false."""
    out: list[tuple[str, str]] = []
    for key, value in kwargs.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append((key, str(value)))
    return out


def _csv(value: str | Sequence[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)


#: pauses before a refused playback stop is sent again (see ``stop_playback``)
_STOP_RETRIES = (0.01, 0.02, 0.04, 0.08, 0.16)

class AriRest(ABC):
    """Every typed ARI REST method, over an abstract :meth:`request`.

    Subclasses implement :meth:`request` and set ``app`` (the Stasis application name the
    ``/applications/...`` calls refer to).
    """

    app: str

    @abstractmethod
    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        body: Any = None,
    ) -> Any:
        """One ARI call: ``path`` is relative to ``/ari`` and already quoted.

        Returns the decoded JSON body, None when empty; raises AriError / AriNotFound.
        """

    async def _maybe_404(self, method: str, path: str, **kw: Any) -> tuple[bool, Any]:
        try:
            return True, await self.request(method, path, **kw)
        except AriNotFound:
            return False, None

    # ---------------------------------------------------------------- asterisk

    async def asterisk_info(self) -> dict:
        return await self.request("GET", "/asterisk/info")

    async def get_global(self, name: str) -> str:
        """A global dialplan variable's value ("" when unset)."""
        data = await self.request("GET", "/asterisk/variable", params=_params(variable=name))
        return str((data or {}).get("value") or "")

    async def unset_global(self, name: str) -> None:
        """Remove a global dialplan variable (set without a value)."""
        await self.request("POST", "/asterisk/variable", params=_params(variable=name))

    # ---------------------------------------------------------------- channels

    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{_q(channel_id)}/answer")

    async def play(
        self,
        channel_id: str,
        media: str | Sequence[str],
        *,
        playback_id: str | None = None,
        lang: str | None = None,
    ) -> dict:
        """Start a playback on a channel; returns the Playback JSON (``id``, ``state`` ...).

        Several media may be given in one request: they play back to back as *one* playback
        (one id, one ``DELETE /playbacks/{id}`` stops the rest of the list).  Events observed
        on Asterisk 22.10 for ``[m1, m2, m3]`` (all carrying the same playback id)::

            PlaybackStarted    media_uri=m1 next_media_uri=m2
            PlaybackContinuing media_uri=m1 next_media_uri=m2   (state "continuing")
            PlaybackStarted    media_uri=m2 next_media_uri=m3
            PlaybackContinuing media_uri=m2 next_media_uri=m3
            PlaybackStarted    media_uri=m3                     (no next_media_uri)
            PlaybackFinished   media_uri=m3                     (state "done")

        i.e. one PlaybackStarted *per item*, one PlaybackContinuing per transition and a
        single PlaybackFinished; wait for PlaybackFinished, not for a PlaybackStarted count.
        A playback stopped with :meth:`stop_playback` ends with one PlaybackFinished (state
        "done" too).  A lone ``media`` string goes in the query string.  A list goes in a
        JSON body (``{"media": [...]}``) because ARI keeps only the *last* of repeated
        ``media`` query parameters, and its comma-separated form would split URIs that
        contain commas.
        """
        params = _params(lang=lang, playbackId=playback_id)
        path = f"/channels/{_q(channel_id)}/play"
        if isinstance(media, str):
            params.append(("media", media))
            return await self.request("POST", path, params=params)
        return await self.request("POST", path, params=params, body={"media": list(media)})

    async def stop_playback(self, playback_id: str) -> bool:
        """Stop a playback; False when it does not exist (already finished).

        Asterisk answers ``500 Could not stop playback`` to a stop that arrives while the
        playback is not yet (or, in a list, not any more) controllable: between its
        PlaybackStarted and the sound actually streaming — the moment a caller pressing a
        key at the very start of a prompt (barge-in) hits on a loaded machine. The stop is
        sent again after 10, 20, 40, 80 and 160 ms; then the error is raised."""
        path = f"/playbacks/{_q(playback_id)}"
        for delay in _STOP_RETRIES:
            try:
                return (await self._maybe_404("DELETE", path))[0]
            except AriError as exc:
                if exc.status != 500:
                    raise
            await asyncio.sleep(delay)
        return (await self._maybe_404("DELETE", path))[0]

    async def continue_in_dialplan(
        self,
        channel_id: str,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
    ) -> None:
        await self.request(
            "POST",
            f"/channels/{_q(channel_id)}/continue",
            params=_params(context=context, extension=extension, priority=priority, label=label),
        )

    async def hangup(self, channel_id: str, reason: str = "normal") -> bool:
        """Hang up; False when the channel no longer exists."""
        found, _ = await self._maybe_404(
            "DELETE", f"/channels/{_q(channel_id)}", params=_params(reason=reason)
        )
        return found

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        await self.request(
            "POST",
            f"/channels/{_q(channel_id)}/variable",
            params=_params(variable=name, value=value),
        )

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        """Value of a channel variable; None when ARI answers 404 (no channel / variable)."""
        found, data = await self._maybe_404(
            "GET", f"/channels/{_q(channel_id)}/variable", params=_params(variable=name)
        )
        if not found or not isinstance(data, dict):
            return None
        return data.get("value")

    async def send_dtmf(
        self,
        channel_id: str,
        dtmf: str,
        *,
        before: int = 0,
        between: int = 100,
        duration: int = 100,
        after: int = 0,
    ) -> None:
        await self.request(
            "POST",
            f"/channels/{_q(channel_id)}/dtmf",
            params=_params(
                dtmf=dtmf, before=before, between=between, duration=duration, after=after
            ),
        )

    async def originate(
        self,
        endpoint: str,
        *,
        app: str | None = None,
        app_args: str | Sequence[str] | None = None,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        caller_id: str | None = None,
        timeout: int = 30,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> dict:
        """POST /channels.  With ``app`` the channel enters that Stasis app once answered."""
        params = _params(
            endpoint=endpoint,
            app=app,
            appArgs=None if app_args is None else _csv(app_args),
            context=context,
            extension=extension,
            priority=priority,
            callerId=caller_id,
            timeout=timeout,
            channelId=channel_id,
            otherChannelId=other_channel_id,
        )
        body = {"variables": dict(variables)} if variables else None
        return await self.request("POST", "/channels", params=params, body=body)

    async def create_channel(
        self,
        endpoint: str,
        *,
        app: str,
        app_args: str | Sequence[str] | None = None,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        originator: str | None = None,
        variables: Mapping[str, str] | None = None,
        formats: str | None = None,
    ) -> dict:
        """POST /channels/create: the channel is put in ``app`` right away, not dialled yet.

        ``formats`` (e.g. ``"ulaw"``) matters for Local channels: without it Asterisk creates
        them in signed linear at 192 kHz and spends most of its CPU resampling.
        """
        params = _params(
            endpoint=endpoint,
            app=app,
            appArgs=None if app_args is None else _csv(app_args),
            channelId=channel_id,
            otherChannelId=other_channel_id,
            originator=originator,
            formats=formats,
        )
        body = {"variables": dict(variables)} if variables else None
        return await self.request("POST", "/channels/create", params=params, body=body)

    async def dial(
        self, channel_id: str, *, caller: str | None = None, timeout: int | None = None
    ) -> None:
        await self.request(
            "POST",
            f"/channels/{_q(channel_id)}/dial",
            params=_params(caller=caller, timeout=timeout),
        )

    async def get_channel(self, channel_id: str) -> dict | None:
        _, data = await self._maybe_404("GET", f"/channels/{_q(channel_id)}")
        return data

    async def list_channels(self) -> list[dict]:
        return await self.request("GET", "/channels") or []

    async def ring(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{_q(channel_id)}/ring")

    async def ring_stop(self, channel_id: str) -> None:
        await self.request("DELETE", f"/channels/{_q(channel_id)}/ring")

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> None:
        await self.request(
            "POST", f"/channels/{_q(channel_id)}/moh", params=_params(mohClass=moh_class)
        )

    async def stop_moh(self, channel_id: str) -> None:
        await self.request("DELETE", f"/channels/{_q(channel_id)}/moh")

    # ---------------------------------------------------------------- bridges

    async def create_bridge(
        self, bridge_type: str = "mixing", bridge_id: str | None = None, name: str | None = None
    ) -> dict:
        return await self.request(
            "POST", "/bridges", params=_params(type=bridge_type, bridgeId=bridge_id, name=name)
        )

    async def add_channel_to_bridge(self, bridge_id: str, channel_ids: str | Sequence[str]) -> None:
        await self.request(
            "POST",
            f"/bridges/{_q(bridge_id)}/addChannel",
            params=_params(channel=_csv(channel_ids)),
        )

    async def remove_channel_from_bridge(
        self, bridge_id: str, channel_ids: str | Sequence[str]
    ) -> None:
        await self.request(
            "POST",
            f"/bridges/{_q(bridge_id)}/removeChannel",
            params=_params(channel=_csv(channel_ids)),
        )

    async def list_bridges(self) -> list[dict]:
        return await self.request("GET", "/bridges") or []

    async def destroy_bridge(self, bridge_id: str) -> bool:
        found, _ = await self._maybe_404("DELETE", f"/bridges/{_q(bridge_id)}")
        return found

    # ---------------------------------------------------------------- applications

    async def get_application(self) -> dict:
        """This application's subscriptions (channel_ids, bridge_ids, endpoint_ids, ...)."""
        return await self.request("GET", f"/applications/{_q(self.app)}")

    async def subscribe(self, event_source: str) -> dict:
        """Subscribe this app to e.g. ``channel:ID``, ``bridge:ID``, ``endpoint:PJSIP/alice``."""
        return await self.request(
            "POST",
            f"/applications/{_q(self.app)}/subscription",
            params=_params(eventSource=event_source),
        )

    async def unsubscribe(self, event_source: str) -> dict:
        return await self.request(
            "DELETE",
            f"/applications/{_q(self.app)}/subscription",
            params=_params(eventSource=event_source),
        )

    async def set_event_filter(self, allowed: Sequence[str] | None = None,
                               disallowed: Sequence[str] | None = None) -> dict:
        """PUT /applications/{app}/eventFilter: only these event types reach this app.

        Asterisk then neither builds nor sends the others (ChannelVarset for every variable
        we set, PlaybackStarted, ChannelDialplan, ...), which saves CPU on both sides.
        ``RESTResponse`` is always allowed: REST answers over the websocket are events too.
        """
        body: dict[str, list[dict[str, str]]] = {}
        if allowed is not None:
            body["allowed"] = [{"type": t} for t in dict.fromkeys([*allowed, "RESTResponse"])]
        if disallowed is not None:
            body["disallowed"] = [{"type": t} for t in disallowed]
        return await self.request("PUT", f"/applications/{_q(self.app)}/eventFilter",
                                  body=body)

    # ---------------------------------------------------------------- endpoints

    async def get_endpoint(self, tech: str, resource: str) -> dict | None:
        _, data = await self._maybe_404("GET", f"/endpoints/{_q(tech)}/{_q(resource)}")
        return data

    async def list_endpoints(self) -> list[dict]:
        return await self.request("GET", "/endpoints") or []
