"""The mobile app lifecycle: one session per user (SDK logins, the session token as an SDK
credential, logout, idle expiry), releases and their notices (recommended / mandatory), the
login/logout report, app logs.

    versions.py   PURE: how versions compare
    rules.py      PURE: who gets a notice, is a login / a session allowed, how it ended
    report.py     PURE: the report's time range and CSV
    sessions.py   logins, logout, the token check, the sweep
    releases.py   publishing, the notices, mandatory enforcement
    reminders.py  reminders of a recommended release (the sweeper's); reminderrepo.py
    logs.py       app logs: asked by an admin, or sent unasked; logrepo.py, logs_http.py
    fanout.py     bounded-concurrency sends, batched recording
    service.py    ``Lifecycle``: both, and the sweeper task
    auth.py       the SDK routes' hook: app key or session token
    repo.py, models.py, schemas.py, problems.py, http.py
"""
