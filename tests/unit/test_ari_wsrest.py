"""REST over the ARI websocket: the version gate and the decoding of RESTResponse messages
(the transport itself runs against the real Asterisk in tests/integration/test_ari_client.py)."""

import pytest

from ivr_engine.ari.errors import AriError, AriNotFound
from ivr_engine.ari.wsrest import _decode, supports_rest_over_websocket


@pytest.mark.parametrize("version, ok", [
    ("22.10.1+dfsg+~cs6.17.60671434-1", True), ("22.4.0", True), ("22.4.0-rc1", True),
    ("22.3.0", False), ("21.9.0", True), ("21.8.2", False), ("20.14.1", True),
    ("20.13.0", False), ("23.0.0", True), ("18.20.0", False), ("", False), ("GIT-master", False),
])
def test_version_gate(version, ok):
    assert supports_rest_over_websocket(version) is ok


def test_decode_answers():
    assert _decode("GET", "/x", {"status_code": 200, "message_body": '{"a": 1}'}) == {"a": 1}
    assert _decode("DELETE", "/x", {"status_code": 204}) is None
    with pytest.raises(AriNotFound) as nf:
        _decode("GET", "/channels/x", {"status_code": 404, "reason_phrase": "Not Found",
                                      "message_body": '{"message": "Channel not found"}'})
    assert nf.value.status == 404 and nf.value.message == "Channel not found"
    with pytest.raises(AriError) as err:
        _decode("POST", "/x", {"status_code": 409, "reason_phrase": "Conflict"})
    assert err.value.status == 409 and err.value.message == "Conflict"
    with pytest.raises(AriError):
        _decode("POST", "/x", {})  # no status: never taken for a success
