"""SMS: providers, the spool and its crash-safe dialer, do-not-contact lists, CSV uploads and
the SendSMS web service.

Pure: ``encoding.py`` (GSM-7 / UCS-2, segments), ``numbers.py`` (E.164, regexps, channel
rotation, the default provider), ``csvrows.py`` (upload rules). Shell: ``providers.py`` and
``urlproviders.py`` (the providers' HTTP APIs), ``dialer.py`` (the bulk and single lanes),
``repo.py`` + ``models.py`` (the spool), ``http.py`` + ``schemas.py`` (routes), ``cli.py``.
"""
