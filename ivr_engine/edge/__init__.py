"""The secure SIP edge and calls from a web page (issue 21): NAT settings for Asterisk's
remote-phone transports (``natconf``), the web widget served at ``/w/<app>`` (``widget``)."""
