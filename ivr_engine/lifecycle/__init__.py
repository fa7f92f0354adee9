"""The mobile app lifecycle: one session per user (SDK logins, the session token as an SDK
credential, logout, idle expiry), releases and their notices (recommended / mandatory), the
login/logout report.

    versions.py   PURE: how versions compare
    rules.py      PURE: who gets a notice, is a login / a session allowed, how it ended
    report.py     PURE: the report's time range and CSV
    sessions.py   logins, logout, the token check, the sweep
    releases.py   publishing, the notices, mandatory enforcement
    fanout.py     bounded-concurrency sends, batched recording
    service.py    ``Lifecycle``: both, and the sweeper task
    auth.py       the SDK routes' hook: app key or session token
    repo.py, models.py, schemas.py, problems.py, http.py
"""
