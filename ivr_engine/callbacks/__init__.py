"""Callback requests: what a caller who chose ``callback:<queue>`` leaves behind, and who
calls them back — an API client that claims them, or the engine itself when the caller's
turn comes in the queue (``placer.py``). ``policy.py`` is the pure part (states, windows,
outcomes); ``repo.py`` the compare-and-set transitions; ``http.py`` and ``cli.py`` read them.
"""
