"""The admins' web console (``/console``): the IVR tree as a picture, live calls, queues, SMS
dialers and app roll-outs, server-rendered (Jinja2) over the same functions the admin JSON
API calls, with htmx (vendored by ``scripts/install``) for the small live parts.

- ``http.py``: the routes' assembly, the login (the admin token in a form → a session
  cookie, ``api/cookies.py``), static files, the security headers (strict CSP);
- ``pages.py``: templates and the answers' headers;
- ``trees.py``: the Trees page and the "try it" walk (``ivr/simulate.py``);
- ``live.py``: live calls (server-sent events), a call's detail, queues;
- ``admin.py``: SMS dialers and campaigns, app sessions, releases and the login report;
- ``dot.py`` (**pure**) + ``graphviz.py``: the tree as DOT, drawn by ``dot -Tsvg``, shared
  with ``ivr-engine graph``.

Every route is declared with ``api.routes.ApiRoutes`` (security ``CONSOLE``: the door checks
the cookie and, on requests that change something, the CSRF token); none is in the OpenAPI
document, all are served on the admin listener when one is configured.
"""
