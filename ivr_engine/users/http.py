"""Users routes.

- ``/v1/admin/users`` (admin token): list the database's users (paged by name), create one;
  ``/v1/admin/users/{user}``: read (the database's, else the config's), replace (PUT),
  change (PATCH, JSON merge patch), delete; ``/v1/admin/users/import``: a CSV file
  (``text/csv`` body, spooled and checked, then imported in one transaction), all or
  nothing; 422 lists every bad line, 413 past ``user_directory.imports`` limits.
- ``/v1/users/me/ringing`` (a user's session): what the user's calls ring, read and switched
  by the user from the app (mobile only, or UC + mobile).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..api.input import read_model
from ..api.principal import Principal
from ..api.problems import PROBLEM, Problem
from ..api.routes import ADMIN, SESSION, ApiRoutes, Reply, query_of
from ..api.schemas import reply
from .csvspool import MAX_LISTED
from .directory import Found
from .schemas import (
    ImportAccepted,
    ImportProblem,
    LineError,
    NewUser,
    Ringing,
    RingingRequest,
    User,
    UserFields,
    UserListQuery,
    UserPage,
    UserPatch,
)
from .service import Conflict, NotFound, TooLarge, UserInvalid, UsersService

CSV_TYPES = ("text/csv", "text/plain")
READ_BYTES = 256 * 1024
WRITE_PROBLEMS = {404: "no such user", 409: "the mobile endpoint is another user's, or the "
                  "name is taken (`field` says which)",
                  422: "a key is invalid or does not fit the config (an app or a message "
                  "it names is not defined, an endpoint the ringing device needs is "
                  "missing): `field` names it"}


def user_out(found: Found) -> User:
    rec = found.record
    return User(name=rec.name, ringing_device=rec.ringing_device,  # type: ignore[arg-type]
                mobile_endpoint=rec.mobile_endpoint, uc_endpoint=rec.uc_endpoint, app=rec.app,
                no_answer=str(rec.no_answer) if rec.no_answer else None, wakeup=rec.overrides,
                source=found.source, config_at=found.config_at)  # type: ignore[arg-type]


def _name(request: web.Request) -> str:
    return request.match_info["user"]


def _refused(request: web.Request, check: Any) -> web.Response:
    doc = ImportProblem(title="Import refused", status=422, instance=request.path,
                        detail=f"{check.bad_lines} bad line(s); nothing was imported",
                        bad_lines=check.bad_lines,
                        errors=[LineError(line=e.line, reason=e.reason)
                                for e in check.errors[:MAX_LISTED]])
    return web.Response(status=422, content_type=PROBLEM,
                        text=json.dumps(doc.model_dump(exclude_none=True)))


async def _write(coro: Any) -> Any:
    """The service's refusals as problems."""
    try:
        return await coro
    except UserInvalid as exc:
        raise Problem(422, "Invalid user", exc.message, field=exc.field) from None
    except Conflict as exc:
        raise Problem(409, "Conflict", str(exc), field=exc.field) from None
    except NotFound as exc:
        raise Problem(404, "Not found", f"no user named {exc.args[0]!r}", field="user") \
            from None


def user_routes(service: UsersService) -> ApiRoutes:
    routes = ApiRoutes("users")

    @routes.get("/v1/admin/users", summary="The database's users, by name",
                security=ADMIN, query=UserListQuery, responses={200: UserPage})
    async def list_users(request: web.Request, who: Principal) -> web.Response:
        """The users kept in the database, `limit` per page (at most 1000), the next page
        from `after` = the previous `next_after`. The config file's `users:` are not
        listed (`GET /v1/admin/users/{user}` reads one of them)."""
        q: UserListQuery = query_of(request)
        found, more = await service.page(q.after, q.limit)
        return reply(UserPage(users=[user_out(f) for f in found],
                              next_after=found[-1].record.name if more and found else None,
                              total=await service.repo.count()))

    @routes.post("/v1/admin/users", summary="Create a database user", security=ADMIN,
                 body=NewUser, responses={201: User}, problems=WRITE_PROBLEMS)
    async def create_user(request: web.Request, who: Principal) -> web.Response:
        """A name already in the database is refused (409): `PUT` replaces. A name under
        the config's `users:` is allowed: the database's user wins from now on
        (`config_at` names the one it shadows)."""
        req = await read_model(request, NewUser)
        found = await _write(service.create(req.name, req.values()))
        return reply(user_out(found), status=201)

    @routes.get("/v1/admin/users/{user}", summary="One user: the database's, else the "
                "config's", security=ADMIN, responses={200: User},
                problems={404: "neither in the database nor under `users:`"})
    async def get_user(request: web.Request, who: Principal) -> web.Response:
        """What a call to `user:<name>` rings now."""
        found = await service.find(_name(request))
        if found is None:
            raise Problem(404, "Not found", f"no user named {_name(request)!r}",
                          field="user")
        return reply(user_out(found))

    @routes.put("/v1/admin/users/{user}", summary="Create or replace a database user",
                security=ADMIN, body=UserFields, responses={200: User, 201: User},
                problems=WRITE_PROBLEMS)
    async def put_user(request: web.Request, who: Principal) -> web.Response:
        """Every key is replaced: a key left out takes its default. 201 when created."""
        req = await read_model(request, UserFields)
        found, created = await _write(service.replace(_name(request), req.values()))
        return reply(user_out(found), status=201 if created else 200)

    @routes.route("PATCH", "/v1/admin/users/{user}", summary="Change some keys of a user",
                  security=ADMIN, body=UserPatch, responses={200: User},
                  problems=WRITE_PROBLEMS)
    async def patch_user(request: web.Request, who: Principal) -> web.Response:
        """JSON merge patch: a key given replaces, `null` removes it. A user of the config
        file's `users:` is copied to the database with the change (the copy wins from
        then on; deleting it brings the config's back)."""
        req = await read_model(request, UserPatch)
        return reply(user_out(await _write(service.patch(_name(request), req.changes()))))

    @routes.delete("/v1/admin/users/{user}", summary="Delete a database user",
                   security=ADMIN, responses={204: Reply(description="deleted")},
                   problems={404: "no such user",
                             409: "the user is in the config file, not in the database"})
    async def delete_user(request: web.Request, who: Principal) -> web.Response:
        """A user of the same name under the config's `users:` is rung again from then
        on."""
        await _write(service.delete(_name(request)))
        return web.Response(status=204)

    @routes.post("/v1/admin/users/import", summary="Import users from a CSV file (all or "
                 "nothing)", security=ADMIN, responses={200: ImportAccepted},
                 problems={413: "larger than `user_directory.imports.max_bytes`, or more "
                           "users than `max_rows`",
                           415: "the body is not sent as Content-Type: text/csv (UTF-8)",
                           409: "an endpoint of the file was given to another user while "
                           "it was imported: nothing was imported",
                           422: Reply(ImportProblem, "the file is refused and nothing was "
                                      "imported; `errors` lists every bad line")})
    async def import_users(request: web.Request, who: Principal) -> web.Response:
        """The body is the file (`Content-Type: text/csv`): a header naming the columns
        (`name` and any of ringing_device, mobile_endpoint, uc_endpoint, app, no_answer,
        mobile_loops, uc_mobile_loops, interval_seconds, hold, moh_class, message,
        ring_seconds), then one user per line; an empty cell takes the default. Each user
        is created, or replaced whole; users not in the file are left as they are."""
        if request.content_type not in CSV_TYPES:
            raise Problem(415, "Unsupported Media Type", "send the file as text/csv")
        limit = service.config().model.user_directory.imports.max_bytes
        if (request.content_length or 0) > limit:
            raise Problem(413, "Payload Too Large", f"the file is larger than {limit} bytes "
                          "(user_directory.imports.max_bytes)")
        try:
            result = await _write(service.import_csv(
                request.content.iter_chunked(READ_BYTES)))
        except TooLarge as exc:
            raise Problem(413, "Payload Too Large", f"{exc}; nothing was imported") from None
        if not result.ok:
            return _refused(request, result.check)
        return reply(ImportAccepted(imported=result.imported, created=result.created,
                                    replaced=result.imported - result.created))

    def ringing(found: Found) -> Ringing:
        return Ringing(user=found.record.name, source=found.source,  # type: ignore[arg-type]
                       ringing_device=found.record.ringing_device)  # type: ignore[arg-type]

    @routes.get("/v1/users/me/ringing", summary="What the session user's calls ring",
                security=SESSION, responses={200: Ringing},
                problems={404: "the session's user is not one the engine rings"})
    async def get_ringing(request: web.Request, who: Principal) -> web.Response:
        """`Authorization: Bearer <session token>`."""
        assert who.user is not None
        found = await service.find(who.user)
        if found is None:
            raise Problem(404, "Unknown user", "your user is not one the engine rings",
                          field="user")
        return reply(ringing(found))

    @routes.put("/v1/users/me/ringing", summary="Switch what the session user's calls ring",
                security=SESSION, body=RingingRequest, responses={200: Ringing},
                problems={404: "the session's user is not one the engine rings",
                          409: "the user is woken through another app (`field`: app)",
                          422: "the user has no UC endpoint (uc+mobile) or no mobile "
                          "endpoint (mobile): `field`: ringing_device"})
    async def put_ringing(request: web.Request, who: Principal) -> web.Response:
        """`mobile`: the phone app alone; `uc+mobile`: the UC client rings at once and the
        phone app joins when awake. Applies from the next call. A user of the config file
        becomes a database user with the change."""
        assert who.user is not None and who.app is not None
        req = await read_model(request, RingingRequest)
        found = await _write(service.switch(who.user, who.app, req.ringing_device))
        return reply(ringing(found))

    return routes
