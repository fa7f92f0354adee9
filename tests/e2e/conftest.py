"""Fixtures of the end-to-end tests.

* ``sandbox`` (session): the sandbox Asterisk, from ``tests/integration/conftest.py``.
* ``fcm_engine(sandbox, fcm, workdir, config)``: the real engine on ``config`` for a block, its
  pushes sent to the local FCM server ``fcm``; a module's ``engine`` fixture enters it.
* ``ari`` (per test): an ARI client of the sandbox (its own application), once the module's
  ``engine`` runs; its channels hung up after the test.
* ``hang_up(ari, a, b)``: the caller of a ``local_call`` hangs up; back once the engine's side
  is gone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.integration.conftest import sandbox  # noqa: F401 - the shared session fixture
from tests.integration.conftest import next_event, start_client, stop_client
from tests.integration.engine_proc import EngineProcess, start_engine
from tests.support.push_servers import FakeFcm


@asynccontextmanager
async def fcm_engine(sandbox, fcm: FakeFcm, workdir: Path,  # noqa: F811 - a parameter
                     config: Path) -> AsyncIterator[EngineProcess]:
    """The engine for the block; stopped after it, which must end with exit status 0."""
    eng = await start_engine(sandbox, workdir, config=config,
                             extra_env={"IVR_TEST_FCM_SA": str(fcm.account.path),
                                        "IVR_TEST_FCM_URL": fcm.url})
    yield eng
    assert await eng.stop() == 0, eng.log()


@pytest.fixture
async def ari(sandbox, engine):  # noqa: F811 - the fixture
    client = await start_client(sandbox)
    yield client
    await stop_client(client)


async def hang_up(ari, a: str, b: str) -> None:
    """The caller side ``a`` of a ``local_call`` hangs up: back once the engine's side ``b``
    is destroyed."""
    await ari.hangup(a)
    await next_event(ari.events, "ChannelDestroyed", timeout=5,
                     predicate=lambda e: e.channel_id == b)
