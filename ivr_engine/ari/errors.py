"""Exceptions raised by the ARI client (:mod:`.rest` calls and the events websocket)."""

from __future__ import annotations

__all__ = ["AriAppReplaced", "AriError", "AriNotFound"]


class AriError(Exception):
    """A non-2xx answer from ARI (or ``status == 0`` when the request never got an answer)."""

    def __init__(self, status: int, method: str, path: str, message: str = "") -> None:
        self.status = status
        self.method = method
        self.path = path
        self.message = message
        super().__init__(f"ARI {method} {path} -> {status or 'no response'}: {message}")


class AriNotFound(AriError):
    """ARI answered 404 (channel, playback, bridge, variable ... not found)."""


class AriAppReplaced(Exception):
    """Another websocket registered our application name; we must not reconnect."""
