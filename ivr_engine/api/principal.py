"""Who is asking, as the door proved it: what a handler behind a credential receives."""

from __future__ import annotations

from dataclasses import dataclass

from .routes import ADMIN, ADMIN_FORM, APP_KEY, CONSOLE, PROVIDER, PUBLIC, SESSION, Security


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a route.

    - ``APP_KEY``: ``app`` — the app is proven, no user (the key ships in every copy of it);
    - ``SESSION``: ``app``, ``user`` and ``session_id`` — a user the customer's backend
      vouched for (a signed assertion at login), through the session it opened;
    - ``ADMIN``: the engine's administrator; ``CONSOLE``: the administrator in the console
      (a session cookie), ``csrf`` the session's CSRF token for the pages' forms;
      ``ADMIN_FORM``: the administrator logging in to the console;
    - ``PROVIDER``: ``provider`` — an SMS provider's callback;
    - ``PUBLIC``: nobody in particular.
    ``address`` is the client's address (the TCP peer).
    """

    scheme: Security
    address: str = ""
    app: str | None = None
    user: str | None = None
    session_id: int | None = None
    provider: str | None = None
    csrf: str | None = None

    @property
    def verified(self) -> bool:
        """A user proven by the app's backend (never by the app's key)."""
        return self.scheme is SESSION and self.user is not None

    def describe(self) -> str:
        """For log lines: never a credential."""
        if self.scheme is SESSION:
            return f"session {self.session_id} of {self.user!r} (app {self.app})"
        if self.scheme is APP_KEY:
            return f"app key of {self.app}"
        if self.scheme is PROVIDER:
            return f"provider {self.provider}"
        if self.scheme in (ADMIN, ADMIN_FORM):
            return "admin"
        if self.scheme is CONSOLE:
            return "admin (console)"
        assert self.scheme is PUBLIC
        return "public"
