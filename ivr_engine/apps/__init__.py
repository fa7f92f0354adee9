"""Mobile apps as a feature: the SDK's call plans (VoIP or PSTN with a one-time token,
``plans.py``), the limits on guessing those tokens (``guard.py``), and the call plan route
(``http.py``). The routing of an app's calls into its own tree is in ``routing/entry.py``."""
