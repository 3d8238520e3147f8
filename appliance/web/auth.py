"""Web authentication: session cookies, roles, CSRF, login throttling (appliance.web.login_guard), and the
login/first-run/user routes.

Every route outside `public_router` sits behind `authenticated`, which wants a session cookie and, on
state-changing methods, an `X-CSRF-Token` header equal to the session's CSRF token (double submit:
the token is also in the readable `nvr_csrf` cookie, which another site cannot read). Roles are
checked with `Depends(require("operator"))`.
"""
from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Depends, HTTPException, Request, Response, WebSocket
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from appliance.web.login_guard import KnownClientNeeded, Throttled
from appliance.web.users import ROLES, LoginError, Session, User, AccountError, UserStore

SESSION_COOKIE = "nvr_session"
CSRF_COOKIE = "nvr_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
log = logging.getLogger("nvr.web.auth")


def client_address(request: Request | WebSocket) -> str:
    return request.client.host if request.client else "?"


def users_of(request: Request | WebSocket) -> UserStore:
    return request.app.state.ctx.users


def _session_of(request: Request | WebSocket) -> Session | None:
    token = request.cookies.get(SESSION_COOKIE)
    return users_of(request).session(token) if token else None


def authenticated(request: Request) -> Session:
    """The request's session; 401 without one, 403 when a state-changing request lacks the CSRF token."""
    session = _session_of(request)
    if session is None:
        raise HTTPException(401, "log in first", headers={"WWW-Authenticate": "Cookie"})
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header (CSRF protection); reload the page")
    request.state.user = session.user
    return session


def require(role: str):
    """A dependency that lets through users with `role` or a higher one (403 otherwise)."""
    assert role in ROLES

    def check(session: Session = Depends(authenticated)) -> User:
        if not session.user.may(role):
            raise HTTPException(403, f"this needs the {role} role; you are {session.user.role}")
        return session.user
    return check


def websocket_user(websocket: WebSocket) -> User | None:
    """The user of a WebSocket handshake, or None. The Origin must be this host (no cross-site sockets)."""
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host")
    if origin is not None and host is not None and origin.split("://", 1)[-1] != host:
        return None
    session = _session_of(websocket)
    return session.user if session else None


def audit(request: Request, action: str, detail: dict | str = "") -> None:
    """Write an audit entry for the request's user (from a handler running on a worker thread)."""
    user = getattr(request.state, "user", None)
    users_of(request).audit(user.name if user else None, action, detail, client_address(request))


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class NewUser(Credentials):
    role: str = Field("viewer", pattern="^(viewer|operator|admin)$")


class NewIntegrationAccount(Credentials):
    role: str = Field("viewer", pattern="^(viewer|operator)$")


def _set_session_cookies(request: Request, response: Response, session: Session) -> None:
    secure = request.url.scheme == "https"
    response.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="strict", secure=secure, path="/")
    response.set_cookie(CSRF_COOKIE, session.csrf, httponly=False, samesite="strict", secure=secure, path="/")


def _session_body(session: Session) -> dict:
    return {"username": session.user.name, "role": session.user.role, "csrf_token": session.csrf}


public_router = APIRouter(tags=["auth"])


@public_router.get("/api/ping")
def ping(request: Request) -> dict:
    """The minimal public health probe: up, whether any stream is recording, whether set-up is needed."""
    ctx = request.app.state.ctx
    streams = ctx.appliance.streams()
    return {"status": "ok" if all(s.connected for s in streams) else "degraded",
            "streams": len(streams), "recording": sum(1 for s in streams if s.connected),
            "setup_required": not ctx.users.has_users()}


def throttled(request: Request, exc: Throttled, user: str | None) -> HTTPException:
    """Log and audit a refused login; the 429 to raise (with Retry-After). Costs no thread and no
    database write here: under a flood the audit entries are written in batches (UserStore.audit_soon)."""
    client = client_address(request)
    log.warning("login for %r from %s refused for %d s: %s", user, client, exc.retry_after_s, exc.reason)
    users_of(request).audit_soon(user, "login_throttled", {"reason": exc.reason, "retry_after_s": exc.retry_after_s},
                                 client)
    return HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after_s)})


@public_router.post("/api/login")
async def login(credentials: Credentials, request: Request, response: Response) -> dict:
    """Check the password and set the session cookie. 401 for a wrong name or password (never said
    which), 429 with Retry-After when this address or account must wait or the appliance is busy."""
    ctx, client, name = request.app.state.ctx, client_address(request), credentials.username
    try:
        try:
            ticket = ctx.logins.reserve(name, client)
        except KnownClientNeeded:
            known = await run_in_threadpool(ctx.users.known_client, name, client)
            ticket = ctx.logins.reserve(name, client, known_client=known)
    except Throttled as exc:
        raise throttled(request, exc, name) from None
    try:
        session = await ctx.logins.check(ticket, ctx.users.login, name, credentials.password, client)
    except LoginError as exc:
        await run_in_threadpool(ctx.users.audit, name, "login_failed", "", client)
        raise HTTPException(401, str(exc)) from None
    await run_in_threadpool(ctx.users.audit, session.user.name, "login", "", client)
    _set_session_cookies(request, response, session)
    return _session_body(session)


@public_router.post("/api/setup")
async def first_run(credentials: Credentials, request: Request, response: Response) -> dict:
    """First run only: create the administrator (there is no default password) and log in as it."""
    users, logins, client = users_of(request), request.app.state.ctx.logins, client_address(request)
    try:
        await logins.run(users.create_first_admin, credentials.username, credentials.password)
        session = await logins.run(users.login, credentials.username, credentials.password, client)
    except AccountError as exc:
        raise HTTPException(409 if "already" in str(exc) else 422, str(exc)) from None
    except Throttled as exc:
        raise throttled(request, exc, credentials.username) from None
    await run_in_threadpool(users.audit, session.user.name, "setup_admin", "", client)
    _set_session_cookies(request, response, session)
    return _session_body(session)


router = APIRouter(tags=["auth"], dependencies=[Depends(authenticated)])


@router.post("/api/logout")
def logout(request: Request, response: Response, session: Session = Depends(authenticated)) -> dict:
    users_of(request).logout(session.token)
    audit(request, "logout")
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return {"ok": True}


@router.get("/api/me")
def me(session: Session = Depends(authenticated)) -> dict:
    return _session_body(session)


@router.get("/api/users")
def list_users(request: Request, _: User = Depends(require("admin"))) -> list[dict]:
    return [{"username": u.name, "role": u.role} for u in users_of(request).users()]


@router.post("/api/users")
def add_user(new: NewUser, request: Request, _: User = Depends(require("admin"))) -> dict:
    try:
        user = users_of(request).add_user(new.username, new.password, new.role)
    except AccountError as exc:
        raise HTTPException(409 if "exists" in str(exc) else 422, str(exc)) from None
    audit(request, "user_add", {"username": user.name, "role": user.role})
    return {"username": user.name, "role": user.role}


@router.delete("/api/users/{username}")
def remove_user(username: str, request: Request, admin: User = Depends(require("admin"))) -> dict:
    if username == admin.name:
        raise HTTPException(409, "you cannot remove yourself")
    try:
        users_of(request).remove_user(username)
    except AccountError as exc:
        raise HTTPException(404 if "no user" in str(exc) else 409, str(exc)) from None
    audit(request, "user_remove", {"username": username})
    return {"ok": True}


# Integration accounts (appliance.web.integration_accounts): logins for ONVIF PasswordDigest clients such as
# Home Assistant. Their passwords go in, never out: no answer carries one.

@router.get("/api/integration-accounts")
def list_integration_accounts(request: Request, _: User = Depends(require("admin"))) -> list[dict]:
    accounts = users_of(request).integration
    unusable = set(accounts.unusable())
    return [{"username": a.name, "role": a.role, "usable": a.name not in unusable} for a in accounts.accounts()]


@router.post("/api/integration-accounts")
def set_integration_account(new: NewIntegrationAccount, request: Request, _: User = Depends(require("admin"))) -> dict:
    """Create an account, or set an existing one's password and role."""
    try:
        existed = users_of(request).integration.add(new.username, new.password, new.role)
    except AccountError as exc:
        raise HTTPException(409 if "web user" in str(exc) else 422, str(exc)) from None
    audit(request, "integration_user_change" if existed else "integration_user_add",
          {"username": new.username, "role": new.role})
    return {"username": new.username, "role": new.role, "changed": existed}


@router.delete("/api/integration-accounts/{username}")
def remove_integration_account(username: str, request: Request, _: User = Depends(require("admin"))) -> dict:
    try:
        users_of(request).integration.remove(username)
    except AccountError as exc:
        raise HTTPException(404, str(exc)) from None
    audit(request, "integration_user_remove", {"username": username})
    return {"ok": True}


@router.get("/api/audit")
def audit_log(request: Request, limit: int = 200, _: User = Depends(require("admin"))) -> list[dict]:
    return users_of(request).audit_entries(limit=max(1, min(limit, 1000)))
