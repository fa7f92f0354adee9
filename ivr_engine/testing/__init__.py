"""Scripted test callers: the one way ``ivr-engine call``, the tests and the benchmarks place
calls through Asterisk and record what Asterisk did with them. Shipped with the engine, but
the engine itself never imports it.

- ``record.py``: :class:`CallRecord` (one call, from the ARI events about its channel: a
  timeline, keys, prompts, path, variables, dialplan applications, destination) and
  :class:`AriListener` (an ARI application whose events are routed by channel);
- ``caller.py``: the Local-channel caller (:class:`CallerPool`, :func:`place_call`), keys
  pressed when the menu waits (``IVR_AWAITING``) or as each level's prompt starts;
- ``sipp.py``, ``rtp_pcap.py``, ``sipp/pstn_caller.xml``: real SIP callers (SIPp on a trunk,
  RTP with RFC 4733 keys) and the ARI observer that records them (needs ``sip-tester``).
"""

from .caller import CallerPool, LocalCall, PressOnAwaiting, PressOnLevel, place_call
from .record import AriListener, CallRecord

__all__ = ["AriListener", "CallRecord", "CallerPool", "LocalCall", "PressOnAwaiting",
           "PressOnLevel", "place_call"]
