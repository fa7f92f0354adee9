"""The composition root: builds the configuration holder, the store, the features and the
Asterisk node(s), and owns the engine's TaskGroup. No task is created outside a TaskGroup.

    run_engine TaskGroup
      ├── AsteriskNode.run × nodes (calls app + take-over, registrations app, AMI)
      ├── Calls.run: one task per call, each with its own TaskGroup
      └── Supervisor.run (supervisor.py): everything else, each child restarted after a
          backoff when it fails, never taking the calls down with it
            ├── config-reload: ConfigHolder.run (SIGHUP reloads, off the event loop)
            ├── registrar: KamailioRegistrations.run (engine.registrar.kind kamailio)
            ├── webhook: Webhooks.run (deliveries); api (admin-api): the HTTP API
            ├── callbacks: Placer.run (callbacks placed in their queues, when configured)
            ├── call-records: CallRegistry.run; call-records-expiry: CallRegistry.expire
            ├── lifecycle-sweep: Lifecycle.run (sessions ended by idleness or a grace, reminders)
            ├── token-failures-prune (PostgreSQL): guessing tries past every window deleted
            ├── engine-announce: this engine's API URL in the engines table (owners.py)
            ├── queues (queues-<node> with several): QueueMonitor.run, each node's AMI
            ├── queue-snapshots, queue-listener (PostgreSQL): queues of every node
            ├── sms-inbound-webhook: InboundDelivery.run (the sms.received webhook)
            └── sms-single, sms-dialer-<name>, sms-sweep when sms.in_engine
    SIGTERM/SIGINT stop it (callers in a menu go to the dialplan fallback); SIGHUP reloads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
from contextlib import AsyncExitStack

from sqlalchemy.exc import SQLAlchemyError

from .ari import AriAppReplaced
from .callbacks.placer import Placer
from .calls.manager import Calls
from .calls.owners import Owners, announce_loop
from .calls.registry import CallRegistry
from .calls.session import CallServices
from .calls.webhook import build_webhooks
from .config import Config
from .config.model_nodes import engine_name, node_configs
from .config.reloader import ConfigHolder
from .lifecycle.offline import OfflineCodes
from .lifecycle.service import Lifecycle
from .livedata.notify import QueueListener, dsn_of
from .livedata.shared import follow_queues
from .node import AsteriskNode
from .push import PushService
from .repositories import Store
from .server import ApiParts, build_apps, serve
from .sms.dialer import SmsService, default_worker
from .sms.inbound_webhook import InboundDelivery
from .apps.guard_db import guard_for, prune_loop
from .store import DatabaseUrlError, SchemaNotReady, redact
from .supervisor import RestartPolicy, Supervisor
from .wakeup.kamailio import KamailioRegistrations

log = logging.getLogger("ivr_engine.engine")


async def run_engine(config: Config) -> int:
    """Run until SIGTERM/SIGINT; 0, or 1 when another process took the ARI application or
    the database cannot be reached, 2 when its schema is not at the newest revision."""
    eng = config.engine
    holder = ConfigHolder(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, holder.request_reload)
    code = 0
    async with AsyncExitStack() as stack:
        try:
            store = await Store.open(eng.database_url,
                                     statement_timeout=eng.database.statement_timeout_seconds,
                                     busy_timeout=eng.database.busy_timeout_seconds)
        except (DatabaseUrlError, SchemaNotReady) as exc:  # names `ivr-engine db upgrade`
            log.error("%s", exc)
            return 2
        except (OSError, SQLAlchemyError) as exc:
            log.error("cannot open the database %s: %s", redact(eng.database_url), exc)
            return 1
        stack.push_async_callback(store.close)
        registry = CallRegistry(store.calls)
        stack.push_async_callback(registry.close)  # the last call records, before store.close
        push = PushService(lambda: holder.current, store)
        stack.push_async_callback(push.close)
        sms = await stack.enter_async_context(SmsService(
            lambda: holder.current, store.sms, worker=f"{default_worker()}:engine")) \
            if config.model.sms.in_engine else None  # else `ivr-engine sms dialer` runs them
        # fallback callers' tries, shared by the calls and the plans (on PostgreSQL: by
        # every engine on the database)
        guard = guard_for(store)
        services = CallServices(store=store, registry=registry, push=push, token_guard=guard,
                                engine=engine_name(eng),
                                notifier=build_webhooks(config.model),
                                offline=OfflineCodes(lambda: holder.current, store.lifecycle))
        calls = Calls(lambda: holder.current, services)
        lifecycle = Lifecycle(lambda: holder.current, store, push)
        registrar = None  # the apps register on the nodes (engine.registrar.kind asterisk)
        if eng.registrar.kind == "kamailio":  # ... or at Kamailio, shared by every engine
            registrar = await stack.enter_async_context(KamailioRegistrations(
                eng.registrar, store, lambda: holder.current))
        nodes = [AsteriskNode.from_settings(n, calls, store, lambda: holder.current, registrar)
                 for n in node_configs(eng)]
        for node in nodes:
            await stack.enter_async_context(node)
        background = Supervisor(RestartPolicy.from_settings(eng.supervisor))
        background.add("config-reload", holder.run)
        if registrar is not None:
            background.add("registrar", registrar.run)
        # app_queue over each node's AMI; on PostgreSQL the other nodes' too (snapshots)
        queues = follow_queues(nodes, store, services.engine or "", background,
                               lambda q: QueueListener(dsn_of(eng.database_url), q))
        background.add("call-records", registry.run)
        background.add("call-records-expiry", lambda: registry.expire(
            lambda: holder.current.engine.call_records.retention_days))
        background.add("lifecycle-sweep", lifecycle.run)
        if guard.shared:
            background.add("token-failures-prune", lambda: prune_loop(
                guard, lambda: holder.current, _utcnow))
        inbound = InboundDelivery(lambda: holder.current, store.sms_inbound)
        background.add("sms-inbound-webhook", inbound.run)
        if services.notifier is not None:
            background.add("webhook", services.notifier.run)
        if config.callbacks:  # queues whose callbacks the engine places (callbacks.queues)
            placer = Placer(lambda: holder.current, store.callbacks, services.notifier)
            background.add("callbacks", placer.run)
        if sms is not None:
            for name, start in sms.lanes().items():
                background.add(name, start)
        if eng.api.enabled:
            name = services.engine or ""
            background.add("engine-announce", lambda: announce_loop(
                store.engines, name, lambda: holder.current.engine.api.advertised, _utcnow))
            api, admin = build_apps(ApiParts(
                config=lambda: holder.current, store=store, registry=services.registry,
                calls=calls, nodes=nodes, notifier=services.notifier, holder=holder,
                push=push, lifecycle=lifecycle, sms=sms, inbound=inbound, queues=queues,
                guard=guard, supervisor=background,
                owners=Owners(name, store.engines, lambda: holder.current)))
            background.add("api", lambda: serve(api, eng.api.listen))
            if admin is not None:
                background.add("admin-api", lambda: serve(admin, eng.api.admin_listen,
                                                          "admin API"))
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(n.run(), name=f"node-{n.name}") for n in nodes]
                tasks += [tg.create_task(calls.run(), name="calls"),
                          tg.create_task(background.run(), name="supervisor")]
                await stop.wait()
                log.info("stopping: %d calls in progress go to the dialplan fallback",
                         len(calls))
                for task in tasks:
                    task.cancel()
        except* AriAppReplaced:
            log.error("another process took the ARI application %s; exiting",
                      ", ".join(f"{n.ari.app!r} of node {n.name}" for n in nodes))
            code = 1
    return code


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


#: seconds the tasks still pending when the engine has stopped get to end once cancelled
EXIT_GRACE_SECONDS = 3.0


def run(config: Config) -> int:
    """``asyncio.run(run_engine(config))``, except that SIGTERM always ends the process: a
    task a library leaves behind that never ends (SQLAlchemy 2.1 + aiosqlite 0.22: the
    graceful close of a connection invalidated by a cancelled query, awaiting a worker thread
    that was stopped meanwhile) would hang ``asyncio.run``'s final cancellation for ever.
    Tasks still pending after the engine stopped are cancelled and given
    ``EXIT_GRACE_SECONDS``; those that do not end are named in the log and left."""
    loop = asyncio.new_event_loop()
    try:
        code = loop.run_until_complete(run_engine(config))
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            _, left = loop.run_until_complete(asyncio.wait(pending,
                                                           timeout=EXIT_GRACE_SECONDS))
            for task in left:
                log.warning("exiting with a task that did not end when cancelled: %s",
                            task.get_coro())
        loop.run_until_complete(loop.shutdown_asyncgens())
        return code
    finally:
        loop.close()
