"""Users in the database (issue 19) beside the config's ``users:``: the table (``models.py``,
``repo.py``), a user and its validation by the config's own rules (``records.py``, **pure**),
the one resolver every reader goes through, database first (``directory.py``), the CSV
(``csvrows.py`` pure, ``csvspool.py``), the writes (``service.py``), the routes
(``http.py``, ``schemas.py``), ``ivr-engine users`` and what ``check`` reads (``cli.py``,
``audit.py``)."""
