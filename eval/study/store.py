"""The study database: one SQLite file holds the study (tasks, trials, candidates) and its answers.

Images stay in their folders; the database holds their paths, each behind a random public id, so a
page never shows a path, a file name or a method name. Everything the web app and the aggregation
need goes through `StudyStore`, whose methods are plain SQL on one connection per thread: another
database (PostgreSQL, say) plugs in by reimplementing this class.

Tables
    meta          key, value                 study settings (seed, methods, built, source experiment)
    tasks         name, target_domain, examples (JSON list of image ids)
    images        id (random), path          every image a page may show
    image_hashes  image, sha256              the hash of its bytes as checked at build (eval/study/build.py):
                                             the server serves those bytes or nothing
    trials        id (random), position, task, kind ('regular' | 'catch'), source (image id)
    candidates    trial, slot, label, image  label: the method (or 'source' / 'target' in a catch trial)
    participants  token (random), created, user_agent
    votes         participant, trial, shown (JSON: candidate slots in the order shown), choice (slot),
                  response_ms, created;  PRIMARY KEY (participant, trial): one answer per trial
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import stat
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from safeio.files import InputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (name TEXT PRIMARY KEY, target_domain TEXT NOT NULL, examples TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (id TEXT PRIMARY KEY, path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS image_hashes (image TEXT PRIMARY KEY REFERENCES images(id), sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (id TEXT PRIMARY KEY, position INTEGER NOT NULL UNIQUE, task TEXT NOT NULL
    REFERENCES tasks(name), kind TEXT NOT NULL CHECK (kind IN ('regular', 'catch')), source TEXT NOT NULL REFERENCES images(id));
CREATE TABLE IF NOT EXISTS candidates (trial TEXT NOT NULL REFERENCES trials(id), slot INTEGER NOT NULL, label TEXT NOT NULL,
    image TEXT NOT NULL REFERENCES images(id), PRIMARY KEY (trial, slot));
CREATE TABLE IF NOT EXISTS participants (token TEXT PRIMARY KEY, created REAL NOT NULL, user_agent TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS votes (participant TEXT NOT NULL REFERENCES participants(token), trial TEXT NOT NULL REFERENCES trials(id),
    shown TEXT NOT NULL, choice INTEGER NOT NULL, response_ms INTEGER NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (participant, trial));
"""

MAX_IMAGE_BYTES = 64 * 2**20   # a study image larger than this is not an image a page should show
CATCH_TARGET = "target"    # the real target-domain image of a catch trial: the one right answer
CATCH_SOURCE = "source"    # an untouched source image in a catch trial


class StudyError(InputError, ValueError):
    """A study database that cannot be used as asked (missing, not a study, an image gone)."""


def new_id(nbytes: int = 12) -> str:
    return secrets.token_urlsafe(nbytes)


@dataclass(frozen=True)
class Trial:
    id: str
    position: int
    task: str
    kind: str
    source: str                    # image id
    candidates: tuple[tuple[int, str, str], ...]   # (slot, label, image id)


class StudyStore:
    """The study's database. Thread-safe: one SQLite connection per thread, writes in transactions."""

    def __init__(self, path: str | Path, create: bool = False):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StudyError(f"{self.path}: no such study database; make one with: python -m eval study build ... --out {self.path}")
        self._local = threading.local()
        self._connection().executescript(SCHEMA)   # executescript commits by itself: no transaction around it
        if not create and self.meta("format") is None:
            raise StudyError(f"{self.path}: not a study database of this harness (no format record)")

    # -- connections --------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA foreign_keys = ON")
            connection.execute("PRAGMA journal_mode = WAL")   # readers do not wait for the writer
            connection.execute("PRAGMA busy_timeout = 30000")
            self._local.connection = connection
        return connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error): all of a write or none of it."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def query(self, sql: str, parameters: tuple = ()) -> list[sqlite3.Row]:
        return self._connection().execute(sql, parameters).fetchall()

    # -- the study ----------------------------------------------------------------------------
    def meta(self, key: str) -> Any:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else None

    def tasks(self) -> dict[str, dict[str, Any]]:
        return {row["name"]: {"target_domain": row["target_domain"], "examples": json.loads(row["examples"])}
                for row in self.query("SELECT * FROM tasks ORDER BY rowid")}

    def trials(self) -> list[Trial]:
        candidates: dict[str, list[tuple[int, str, str]]] = {}
        for row in self.query("SELECT trial, slot, label, image FROM candidates ORDER BY trial, slot"):
            candidates.setdefault(row["trial"], []).append((row["slot"], row["label"], row["image"]))
        return [Trial(row["id"], row["position"], row["task"], row["kind"], row["source"], tuple(candidates.get(row["id"], ())))
                for row in self.query("SELECT * FROM trials ORDER BY position")]

    def trial(self, trial_id: str) -> Trial | None:
        return next((t for t in self.trials() if t.id == trial_id), None)

    def image_path(self, image_id: str) -> Path | None:
        rows = self.query("SELECT path FROM images WHERE id = ?", (image_id,))
        return Path(rows[0]["path"]) if rows else None

    def image_bytes(self, image_id: str) -> bytes | None:
        """The bytes of a study image, only if they are still the ones checked when the study was built:
        a regular file (a symbolic link put in its place is not followed) whose sha256 is the recorded
        one. None for an unknown id or a file removed, swapped or changed since."""
        rows = self.query("SELECT path, sha256 FROM images JOIN image_hashes ON image_hashes.image = images.id "
                          "WHERE id = ?", (image_id,))
        if not rows:   # unknown, or built before hashes were recorded (build it again)
            return None
        try:
            descriptor = os.open(rows[0]["path"], os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return None
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            data = handle.read(MAX_IMAGE_BYTES + 1)
        if len(data) > MAX_IMAGE_BYTES or hashlib.sha256(data).hexdigest() != rows[0]["sha256"]:
            return None
        return data

    # -- participants and votes ---------------------------------------------------------------
    def add_participant(self, user_agent: str = "") -> str:
        token = new_id(18)
        with self.transaction() as db:
            db.execute("INSERT INTO participants (token, created, user_agent) VALUES (?, ?, ?)",
                       (token, time.time(), user_agent[:200]))
        return token

    def is_participant(self, token: str | None) -> bool:
        return bool(token) and bool(self.query("SELECT 1 FROM participants WHERE token = ?", (token,)))

    def answered(self, token: str) -> set[str]:
        return {row["trial"] for row in self.query("SELECT trial FROM votes WHERE participant = ?", (token,))}

    def record_vote(self, token: str, trial_id: str, shown: list[int], choice: int, response_ms: int) -> bool:
        """Store one answer; False (and nothing written) when this participant already answered the trial."""
        with self.transaction() as db:
            cursor = db.execute("INSERT OR IGNORE INTO votes (participant, trial, shown, choice, response_ms, created) "
                                "VALUES (?, ?, ?, ?, ?, ?)", (token, trial_id, json.dumps(shown), choice, response_ms, time.time()))
            return cursor.rowcount == 1

    def votes(self) -> list[dict[str, Any]]:
        """Every vote with its trial's task and kind and the chosen candidate's label."""
        rows = self.query(
            "SELECT v.participant, v.trial, t.task, t.kind, v.shown, v.choice, c.label AS chosen, v.response_ms, v.created "
            "FROM votes v JOIN trials t ON t.id = v.trial JOIN candidates c ON c.trial = v.trial AND c.slot = v.choice "
            "ORDER BY v.created, v.participant")
        return [dict(row) for row in rows]

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
