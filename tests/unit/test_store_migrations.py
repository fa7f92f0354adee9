"""The schema is the migrations', on each backend: upgrading an empty database gives exactly
the models; revision 0001 is exactly the schema engines made with ``create_all`` before
migrations, and such a database is recognised and upgraded with its rows; the engine's store
refuses a database that is empty, behind or unknown, naming ``ivr-engine db upgrade``."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, insert, select, text

from ivr_engine.repositories import Store
from ivr_engine.store import Database, SchemaError, SchemaNotReady
from ivr_engine.store.db import HEAD_REVISION, LEGACY_TABLES, head_revision
from ivr_engine.store.models import Base

NOW = dt.datetime(2026, 11, 23, 17, 0, tzinfo=dt.timezone.utc)
# added to legacy tables by later revisions
LATER_COLUMNS = {"call_intents": ("target", "user", "verified"),
                 "callback_requests": ("app", "user", "verified", "claimed_by", "claim_token",
                                       "claimed_at", "attempts", "placements", "not_before",
                                       "dial_channel", "last_outcome", "note", "updated_at",
                                       "completed_at")}
LATER_INDEXES = {"call_intents": ("uq_intent_active_token",),
                 "callback_requests": ("ix_callback_requests_due",)}


def legacy_metadata() -> MetaData:
    """The tables ``Store.open`` created with ``create_all`` before migrations existed."""
    md = MetaData()
    for name in sorted(LEGACY_TABLES):
        table = Base.metadata.tables[name].to_metadata(md)
        for column in LATER_COLUMNS.get(name, ()):
            table._columns.remove(table.c[column])
        for index in list(table.indexes):
            if index.name in LATER_INDEXES.get(name, ()):
                table.indexes.remove(index)
    return md


async def differences(db: Database, metadata: MetaData) -> list:
    def compare(conn):
        ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                     "compare_server_default": True})
        return compare_metadata(ctx, metadata)

    async with db.engine.connect() as conn:
        return await conn.run_sync(compare)


async def test_upgrading_an_empty_database_gives_exactly_the_models(empty_db_url):
    db = Database(empty_db_url)
    try:
        before, after = await db.upgrade()
        assert before.describe() == "empty" and not before.ready
        assert HEAD_REVISION == head_revision(), "a new revision: bump db.HEAD_REVISION"
        assert after.ready and after.current == (HEAD_REVISION,)
        assert await differences(db, Base.metadata) == []
        again, same = await db.upgrade()  # safe to repeat
        assert again.current == same.current == (HEAD_REVISION,)
    finally:
        await db.close()


async def test_revision_0001_is_the_schema_before_migrations(empty_db_url):
    db = Database(empty_db_url)
    try:
        await db.upgrade("0001")
        assert await differences(db, legacy_metadata()) == []
    finally:
        await db.close()


async def test_a_database_made_before_migrations_is_taken_as_0001_and_upgraded(empty_db_url):
    db = Database(empty_db_url)
    try:
        legacy = legacy_metadata()
        async with db.engine.begin() as conn:  # what the engine did at start-up until now
            await conn.run_sync(legacy.create_all)
            await conn.execute(insert(legacy.tables["call_intents"]).values(
                app="a", token="123456", caller="+1555", language="fr",
                custom_data={"order": "A-42"}, created_at=NOW,
                expires_at=NOW + dt.timedelta(seconds=180)))
        state = await db.state()
        assert state.legacy and state.revision == "0001" and not state.ready
        with pytest.raises(SchemaNotReady, match=r"made before migrations \(revision 0001\);"
                           rf" this engine needs revision {HEAD_REVISION}: run `ivr-engine db upgrade`"):
            await Store.open(empty_db_url)
        before, after = await db.upgrade()
        assert before.legacy and after.ready
        assert await differences(db, Base.metadata) == []
    finally:
        await db.close()
    store = await Store.open(empty_db_url)
    try:
        got = await store.intents.consume_token("a", "123456", NOW, "chan-1")
        assert got is not None and got.custom_data == {"order": "A-42"}
    finally:
        await store.close()


async def test_the_engine_refuses_an_empty_or_older_database(empty_db_url):
    with pytest.raises(SchemaNotReady, match=rf"is empty; this engine needs revision {HEAD_REVISION}: "
                                             r"run `ivr-engine db upgrade`"):
        await Store.open(empty_db_url)
    db = Database(empty_db_url)
    try:
        await db.upgrade("0001")
        with pytest.raises(SchemaNotReady, match=r"is at revision 0001; this engine needs "
                                                 rf"revision {HEAD_REVISION}: run `ivr-engine db upgrade`"):
            await Store.open(empty_db_url)
        await db.upgrade()
    finally:
        await db.close()
    await (await Store.open(empty_db_url)).close()


async def test_an_unknown_revision_or_a_partial_schema_is_refused(empty_db_url):
    db = Database(empty_db_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: Base.metadata.tables["devices"].create(c))
        state = await db.state()
        assert "some of revision 0001's tables" in state.problem(empty_db_url)
        with pytest.raises(SchemaError, match="not a schema this engine made"):
            await db.upgrade()
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) "
                                    "NOT NULL PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO alembic_version VALUES ('9999')"))
        with pytest.raises(SchemaNotReady, match="revision 9999, which this engine does not "
                                                 "know"):
            await Store.open(empty_db_url)
        with pytest.raises(SchemaError, match="does not know"):
            await db.upgrade()
        async with db.engine.connect() as conn:  # nothing was changed
            assert (await conn.execute(select(text("version_num"))
                                       .select_from(text("alembic_version")))).scalar() == "9999"
    finally:
        await db.close()


async def test_0006_moves_stored_log_uploads_into_chunks_and_back(empty_db_url):
    """Uploads stored whole in ``app_log_requests.data`` (revision 0003) become 1 MiB chunks;
    a downgrade joins them back."""
    from alembic import command

    from ivr_engine.store.db import alembic_config

    big = bytes(range(256)) * (10 * 1024 + 3)  # 2.5 MiB: three chunks
    db = Database(empty_db_url)
    try:
        await db.upgrade("0005")
        async with db.engine.begin() as conn:
            for rid, data in (("big", big), ("small", b"one line\n"), ("none", None)):
                await conn.execute(text(
                    "INSERT INTO app_log_requests (id, app, \"user\", device_id, platform, "
                    "created_at, expires_at, push_result, uploaded_at, content_type, size, "
                    "data) VALUES (:id, 'a', 'u', 1, 'ios', :t, :t, 'sent', :up, 'text/plain',"
                    " :size, :data)"), {"id": rid, "t": NOW, "up": NOW if data else None,
                                        "size": len(data) if data else None, "data": data})
        await db.upgrade()
        store = await Store.open(empty_db_url)
        try:
            logs = store.lifecycle.logs
            for rid, data in (("big", big), ("small", b"one line\n")):
                row = await logs.get(rid)
                chunks, seq = [], 0
                while (piece := await logs.chunk(row.blob, seq)) is not None:
                    chunks.append(piece)
                    seq += 1
                assert b"".join(chunks) == data and row.size == len(data)
                assert max(map(len, chunks)) <= 1024 * 1024
            assert (await logs.get("none")).blob is None
        finally:
            await store.close()

        def down(conn):
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005")
        async with db.engine.begin() as conn:
            await conn.run_sync(down)
        async with db.engine.connect() as conn:
            back = dict((await conn.execute(text(
                "SELECT id, data FROM app_log_requests"))).all())
        assert {k: v and bytes(v) for k, v in back.items()} == {
            "big": big, "small": b"one line\n", "none": None}
    finally:
        await db.close()
