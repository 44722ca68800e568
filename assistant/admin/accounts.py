"""Administrator accounts, password checks with a back-off, and console sessions.

Credentials: a text file (ASSISTANT_ADMINS, default build/data/admins.txt), one account a line:

    name role scrypt$16384$8$1$<salt hex>$<hash hex>

written by `python -m assistant.admin add-user NAME [--role viewer]` (it asks for the password),
re-read on every login and session check, so removing a line locks that person out at once.
Roles: "admin" follows up ratings and exports; "viewer" reads every page.

Sessions: a random token in an HttpOnly cookie; the store keeps only its SHA-256, so a copy of
the database opens no session. A session ends after IDLE_S without use or ABSOLUTE_S in all.
Failed logins of one account lock it for 2^(n-3) seconds after the third (capped at LOCK_MAX_S),
whatever address they come from; the web server also limits logins per address.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from ..stores import Store
from .schema import ensure

ROLES = ("admin", "viewer")
DEFAULT_FILE = Path("build/data/admins.txt")
IDLE_S = 30 * 60
ABSOLUTE_S = 8 * 3600
FREE_FAILURES = 3
LOCK_MAX_S = 15 * 60
MIN_PASSWORD = 10
NAME = re.compile(r"[A-Za-z0-9_.\-]{2,32}")
_SCRYPT = (2 ** 14, 8, 1)  # n, r, p: about 16 MB and 50 ms a check


class LoginRefused(Exception):
    """Wrong name or password (one message for both), or the account is locked for `wait` s."""

    def __init__(self, wait: float = 0.0):
        super().__init__("locked" if wait else "wrong name or password")
        self.wait = wait


@dataclass(frozen=True)
class Admin:
    name: str
    role: str

    @property
    def can_change(self) -> bool:
        return self.role == "admin"


def hash_password(password: str, salt: bytes | None = None) -> str:
    n, r, p = _SCRYPT
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def check_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(digest) // 2)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Credentials:
    """The credentials file: read on every use, written only by `add`."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path or os.environ.get("ASSISTANT_ADMINS") or DEFAULT_FILE)

    def read(self) -> dict[str, tuple[str, str]]:
        """name -> (role, hash); a missing file has no accounts. Malformed lines are skipped."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return {}
        out = {}
        for line in lines:
            parts = line.split()
            if len(parts) == 3 and NAME.fullmatch(parts[0]) and parts[1] in ROLES:
                out[parts[0]] = (parts[1], parts[2])
        return out

    def add(self, name: str, password: str, role: str = "admin") -> None:
        """Add or replace an account (the file is created readable by its owner only)."""
        if not NAME.fullmatch(name):
            raise ValueError("name: 2–32 letters, digits, '_', '.' or '-'")
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"the password needs at least {MIN_PASSWORD} characters")
        accounts = self.read()
        accounts[name] = (role, hash_password(password))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(f"{n} {r} {h}\n" for n, (r, h) in sorted(accounts.items())))
        os.replace(tmp, self.path)


class Accounts:
    """Logins and sessions over the credentials file and the store's session tables."""

    def __init__(self, store: Store, credentials: Credentials | None = None):
        self.store = ensure(store)
        self.credentials = credentials or Credentials()
        self._dummy = hash_password(secrets.token_hex(8))  # unknown names cost as much as known ones

    def login(self, name: str, password: str, now: float | None = None) -> tuple[Admin, str]:
        """(the admin, a new session token) or LoginRefused."""
        now = time.time() if now is None else now
        name = name.strip()[:32]
        with closing(self.store.connection()) as db:
            row = db.execute("SELECT failures, locked_until FROM admin_login WHERE user = ?", (name,)).fetchone()
        if row and row[1] > now:
            raise LoginRefused(wait=row[1] - now)
        role, encoded = self.credentials.read().get(name, (None, self._dummy))
        if role is None or not check_password(password, encoded):
            self._failed(name, (row[0] if row else 0) + 1, now)
            raise LoginRefused()
        token = secrets.token_urlsafe(32)
        with self.store.transaction() as db:
            db.execute("DELETE FROM admin_login WHERE user = ?", (name,))
            db.execute("DELETE FROM admin_session WHERE seen_at < ? OR created_at < ?", (now - IDLE_S, now - ABSOLUTE_S))
            db.execute("INSERT INTO admin_session VALUES (?,?,?,?)", (_token_hash(token), name, now, now))
        return Admin(name, role), token

    def _failed(self, name: str, failures: int, now: float) -> None:
        if not NAME.fullmatch(name):  # no row for names that cannot exist
            return
        lock = 0.0 if failures < FREE_FAILURES else min(LOCK_MAX_S, 2.0 ** (failures - FREE_FAILURES))
        with self.store.transaction() as db:
            db.execute("INSERT INTO admin_login VALUES (?,?,?) ON CONFLICT (user) DO UPDATE SET "
                       "failures = excluded.failures, locked_until = excluded.locked_until", (name, failures, now + lock))

    def session(self, token: str | None, now: float | None = None) -> Admin | None:
        """The admin of a live session (its idle clock restarted), or None."""
        if not token:
            return None
        now = time.time() if now is None else now
        key = _token_hash(token)
        with closing(self.store.connection()) as db:
            row = db.execute("SELECT user, created_at, seen_at FROM admin_session WHERE token_hash = ?",
                             (key,)).fetchone()
        if row is None or now - row[2] > IDLE_S or now - row[1] > ABSOLUTE_S:
            return None
        account = self.credentials.read().get(row[0])
        if account is None:  # removed from the file since the login
            return None
        if now - row[2] > 60:  # one write a minute at most per session
            with self.store.transaction() as db:
                db.execute("UPDATE admin_session SET seen_at = ? WHERE token_hash = ?", (now, key))
        return Admin(row[0], account[0])

    def logout(self, token: str | None) -> None:
        if token:
            with self.store.transaction() as db:
                db.execute("DELETE FROM admin_session WHERE token_hash = ?", (_token_hash(token),))
