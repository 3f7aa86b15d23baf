"""The SQLite engine under :class:`~recommender.store.catalog.Catalog`.

This module knows how to hold one SQLite file safely; it knows nothing about
tracks or vectors (beets' ``dbcore`` vs ``library`` split).  It provides:

* the single-writer lock: an exclusive :func:`fcntl.flock` on ``<path>.lock``
  holding the writer's pid (readers take no lock);
* read-only validation before anything is written: SQLite magic, the
  ``meta`` table, ``schema_version``, the tables and columns the subclass
  requires (:attr:`SQLiteDatabase.REQUIRED_COLUMNS`), then the WAL journal;
* schema creation and upgrades (:attr:`SQLiteDatabase.MIGRATIONS`), each in
  one write transaction;
* nested transactions: the outermost :meth:`SQLiteDatabase._write` is a
  ``BEGIN IMMEDIATE`` transaction, inner ones are savepoints; the
  ``generation`` / ``vectors_generation`` counters in ``meta`` are bumped once
  per outermost transaction that marked a change;
* :meth:`write_batch`, :meth:`committing_every` and :meth:`snapshot`;
* SQLite errors (corruption, disk full, I/O) reported as
  :class:`~recommender.errors.CatalogError`.

The storage rules (durability, one writer / many readers, no ``fork``) are
stated in :mod:`recommender.store.catalog`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time

from .._utils import check_choice, check_number, json_default
from ..errors import CatalogError, IndexLockedError, ParameterError

__all__ = ["SQLiteDatabase", "dumps"]

logger = logging.getLogger(__name__)

_SQLITE_MAGIC = b"SQLite format 3\x00"


def dumps(value) -> str:
    """``value`` as the JSON text stored in ``meta`` and JSON columns (sorted keys).

    Raises
    ------
    ParameterError
        The value is not JSON serialisable.
    """
    try:
        return json.dumps(value, default=json_default, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"value {value!r:.80}: must be JSON serialisable ({exc})") from None


class SQLiteDatabase:
    """One SQLite file with a writer lock, WAL, nested transactions and a schema.

    Subclasses set :attr:`SCHEMA_VERSION`, :attr:`SCHEMA_SQL`,
    :attr:`REQUIRED_COLUMNS` and :attr:`MIGRATIONS`, and may override
    :meth:`_initial_meta` and :meth:`_forget_cached`.

    Parameters
    ----------
    path : str or os.PathLike
        The SQLite file.
    mode : {'r', 'w', 'c'}
        ``'r'`` read-only (never writes, takes no lock); ``'w'`` open an
        existing file for writing; ``'c'`` like ``'w'`` but create it if the
        file does not exist (or is an SQLite database without any table).
    lock_timeout_s : float
        How long a writer waits for another writer (``0``: refuse at once).
    busy_timeout_s : float
        SQLite busy timeout.

    Raises
    ------
    ParameterError
        Bad ``mode`` or ``lock_timeout_s``.
    CatalogError
        Missing (modes ``'r'``/``'w'``), foreign, corrupt or newer file.
    IndexLockedError
        Another process holds the writer lock.
    """

    #: Schema version this code writes and reads.
    SCHEMA_VERSION = 1
    #: ``CREATE`` statements of the current schema, separated by ``;``.
    SCHEMA_SQL = ""
    #: ``{table: {column, ...}}`` a file must have to be usable.
    REQUIRED_COLUMNS: dict = {}
    #: ``{v: step(conn)}`` turning a schema-``v`` file into ``v + 1`` inside a write transaction.
    MIGRATIONS: dict = {}
    #: ``{v: REQUIRED_COLUMNS of v}``: older versions a reader opens as they are (never upgrading).
    READABLE_VERSIONS: dict = {}

    def __init__(self, path, *, mode="r", lock_timeout_s=0.0, busy_timeout_s=30.0):
        check_choice("mode", mode, ("r", "w", "c"))
        lock_timeout_s = check_number("lock_timeout_s", lock_timeout_s, min=0)
        self.path = os.fspath(path)
        self.mode = mode
        self._busy_ms = int(max(0.0, float(busy_timeout_s)) * 1000)
        self._conn = None
        self._lock_fd = None
        self._rlock = threading.RLock()
        self._depth = 0  # transaction nesting depth
        self._meta_local = threading.local()  # .memo: {key: JSON text} inside meta_read_once()
        self._changed = False  # rows changed in the open transaction: bump 'generation'
        self._vectors_changed = False  # ... and 'vectors_generation'
        self.schema_version = self.SCHEMA_VERSION  # of the open file (older only for a reader)
        try:
            self._open(lock_timeout_s)
        except BaseException:
            self._release()
            raise

    # ------------------------------------------------------------------ hooks
    def _initial_meta(self) -> dict:
        """Extra ``meta`` items written with a new schema (after the engine's own)."""
        return {}

    def _forget_cached(self) -> None:
        """Drop caches of ``meta`` values (called when a transaction rolls back)."""

    # ------------------------------------------------------------------ open
    def _open(self, lock_timeout_s):
        exists = os.path.exists(self.path)
        if not exists and self.mode != "c":
            raise CatalogError(self.path, "no such catalog file")
        if exists:
            # Validate read-only before taking a lock or opening for writing,
            # so a foreign file is never touched (not even a lock beside it).
            self._precheck_file()
            conn = self._connect(readonly=True)
            try:
                state = self._inspect(conn)
            finally:
                conn.close()
            if state == "empty" and self.mode != "c":
                raise CatalogError(self.path, "SQLite database without a catalog (no tables)")
            if self.mode == "r":
                self._conn = self._connect(readonly=True)
                self._conn.execute("PRAGMA query_only=ON")
                return
        self._acquire_lock(lock_timeout_s)
        try:
            exists = os.path.exists(self.path)  # may have appeared meanwhile
            if exists:
                self._precheck_file()
            self._conn = self._connect(readonly=False)
            conn = self._conn
            state = self._inspect(conn) if exists else "empty"
            if state == "empty":
                if self.mode != "c":
                    raise CatalogError(self.path, "SQLite database without a catalog (no tables)")
                conn.execute("PRAGMA journal_mode=WAL")
                self._create_schema()
            else:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    logger.warning("%s: could not switch to WAL (journal_mode=%s)", self.path, mode)
                self._migrate(state)
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            raise CatalogError(self.path, f"cannot open catalog for writing: {exc}") from None

    def _precheck_file(self):
        if os.path.isdir(self.path):
            raise CatalogError(self.path, "is a directory, expected an SQLite file")
        try:
            with open(self.path, "rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
        except OSError as exc:
            raise CatalogError(self.path, f"cannot read: {exc.strerror or exc}") from None
        if head and head != _SQLITE_MAGIC:
            raise CatalogError(self.path, "not an SQLite database (bad header)")
        if not head and self.mode != "c":
            raise CatalogError(self.path, "empty file, not a catalog")

    def _connect(self, *, readonly):
        uri = "file:" + _uri_path(self.path) + ("?mode=ro" if readonly else "?mode=rwc")
        try:
            conn = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False, timeout=self._busy_ms / 1000
            )
        except sqlite3.Error as exc:
            raise CatalogError(self.path, f"cannot open: {exc}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise CatalogError(self.path, f"not a usable SQLite database: {exc}") from None
        return conn

    def _inspect(self, conn):
        """Validate the schema; return 'empty' (no tables) or the schema version."""
        try:
            names = {
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
                )
            }
            if not names:
                return "empty"
            if "meta" not in names:
                shown = ", ".join(sorted(names)[:8])
                raise CatalogError(
                    self.path, f"not a recommender catalog: no 'meta' table (tables: {shown})"
                )
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                raise CatalogError(self.path, "not a recommender catalog: meta has no schema_version")
            try:
                version = json.loads(row[0])
            except (TypeError, ValueError):
                version = None
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise CatalogError(self.path, f"invalid schema_version {row[0]!r} in meta")
            if version > self.SCHEMA_VERSION:
                raise CatalogError(
                    self.path,
                    f"catalog schema version {version} was written by a newer recommender; "
                    f"this version reads up to {self.SCHEMA_VERSION}",
                )
            required = self.REQUIRED_COLUMNS
            if version < self.SCHEMA_VERSION:
                if self.mode != "r":
                    return version  # upgraded by _migrate, inside the writer's transaction
                if version not in self.READABLE_VERSIONS:
                    raise CatalogError(
                        self.path,
                        f"catalog schema version {version} is older than {self.SCHEMA_VERSION}; "
                        "open it once with mode='w' to upgrade",
                    )
                required = self.READABLE_VERSIONS[version]  # read as it is, never upgraded by a reader
            self.schema_version = version
            for table, cols in required.items():
                if table not in names:
                    raise CatalogError(self.path, f"corrupt catalog: missing table {table!r}")
                have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
                missing = sorted(cols - have)
                if missing:
                    raise CatalogError(
                        self.path, f"corrupt catalog: table {table!r} lacks column(s) {missing}"
                    )
            return version
        except sqlite3.DatabaseError as exc:
            raise CatalogError(self.path, f"corrupt or not an SQLite database: {exc}") from None

    def _create_schema(self):
        now = time.time()
        with self._write():
            # (not executescript: it would COMMIT the open transaction first)
            for stmt in self.SCHEMA_SQL.split(";"):
                if stmt.strip():
                    self._conn.execute(stmt)
            self._put_meta(
                schema_version=self.SCHEMA_VERSION,
                created_at=now,
                generation=0,
                vectors_generation=0,
                **self._initial_meta(),
            )
        logger.info("created catalog %s (schema %d)", self.path, self.SCHEMA_VERSION)

    def _migrate(self, version):
        while version < self.SCHEMA_VERSION:
            step = self.MIGRATIONS.get(version)
            if step is None:
                raise CatalogError(self.path, f"no upgrade path from schema version {version}")
            with self._write():
                step(self._conn)
                self._put_meta(schema_version=version + 1)
            version += 1
        self.schema_version = version

    # ----------------------------------------------------------------- locks
    @property
    def lock_path(self) -> str:
        """Sidecar file whose ``flock`` marks the single writer."""
        return self.path + ".lock"

    def _acquire_lock(self, timeout_s):
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise CatalogError(self.lock_path, f"cannot create lock file: {exc.strerror}") from None
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise CatalogError(self.lock_path, f"cannot lock: {exc.strerror}") from None
                if time.monotonic() >= deadline:
                    holder = _read_pid(fd)
                    os.close(fd)
                    who = f"process {holder}" if holder else "another process"
                    waited = f" after waiting {timeout_s:g} s" if timeout_s else ""
                    raise IndexLockedError(
                        self.path, f"catalog is being written by {who}{waited} (lock {self.lock_path})"
                    ) from None
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass
        self._lock_fd = fd

    # ----------------------------------------------------------------- close
    def _release(self):
        if self._conn is not None:
            try:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
        if self._lock_fd is not None:
            try:
                os.ftruncate(self._lock_fd, 0)
            except OSError:
                pass
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = None

    def close(self) -> None:
        """Close the connection and release the writer lock (idempotent)."""
        with self._rlock:
            self._release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self._release()
        except Exception:
            pass

    def __repr__(self):
        state = "closed" if self._conn is None else f"mode={self.mode!r}"
        return f"{type(self).__name__}({self.path!r}, {state})"

    @property
    def closed(self) -> bool:
        return self._conn is None

    def _c(self):
        if self._conn is None:
            raise CatalogError(self.path, "catalog is closed")
        return self._conn

    # ----------------------------------------------------------- transactions
    @contextlib.contextmanager
    def _write(self):
        """One write transaction (outermost) or a savepoint (nested)."""
        if self.mode == "r":
            raise CatalogError(self.path, "catalog is open read-only (mode='r')")
        with self._rlock, self._db_errors():
            conn = self._c()
            if self._depth == 0:
                conn.execute("BEGIN IMMEDIATE")
                self._changed = self._vectors_changed = False
                self._depth = 1
                try:
                    yield conn
                    if self._changed or self._vectors_changed:
                        self._bump_generations()
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    self._forget_cached()
                    raise
                finally:
                    self._depth = 0
                    self._changed = self._vectors_changed = False
            else:
                name = f"sp{self._depth}"
                conn.execute(f"SAVEPOINT {name}")
                self._depth += 1
                changed, vchanged = self._changed, self._vectors_changed
                try:
                    yield conn
                    conn.execute(f"RELEASE {name}")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute(f"ROLLBACK TO {name}")
                        conn.execute(f"RELEASE {name}")
                    self._changed, self._vectors_changed = changed, vchanged
                    self._forget_cached()
                    raise
                finally:
                    self._depth -= 1

    def _bump_generations(self):
        row = dict(
            self._conn.execute(
                "SELECT key, value FROM meta WHERE key IN ('generation', 'vectors_generation')"
            ).fetchall()
        )
        items = {"generation": int(json.loads(row.get("generation", "0"))) + 1}
        if self._vectors_changed:
            items["vectors_generation"] = int(json.loads(row.get("vectors_generation", "0"))) + 1
        self._put_meta(**items)

    @contextlib.contextmanager
    def write_batch(self):
        """Group many writes into one transaction (much faster than one each).

        A failing write inside the batch (e.g. :meth:`Catalog.add_track`) is
        rolled back alone (it runs in a savepoint) and its exception
        propagates; if that exception leaves the ``with`` block, the whole
        batch is rolled back.  The generation is bumped once per batch.

        Examples
        --------
        >>> with cat.write_batch():  # doctest: +SKIP
        ...     for rec, vecs in results:
        ...         cat.add_track(rec, vectors=vecs)
        """
        with self._write():
            yield self

    @contextlib.contextmanager
    def committing_every(self, seconds):
        """Write in batches that commit every ``seconds``: yields a ``tick()``
        to call after each write; it commits the open batch and starts the
        next one once ``seconds`` have passed since the last commit.

        An exception leaving the block rolls back only the open batch; what
        was committed before stays.

        Parameters
        ----------
        seconds : float
            Seconds between commits (>= 0).

        Examples
        --------
        >>> with cat.committing_every(2.0) as tick:  # doctest: +SKIP
        ...     for rec, vecs in results:
        ...         cat.add_track(rec, vectors=vecs)
        ...         tick()
        """
        seconds = check_number("seconds", seconds, min=0)
        with contextlib.ExitStack() as stack:  # an ExitStack can be refilled after close()
            stack.enter_context(self.write_batch())
            last = time.monotonic()

            def tick() -> None:
                nonlocal last
                if time.monotonic() - last > seconds:
                    stack.close()  # commit the open batch
                    stack.enter_context(self.write_batch())
                    last = time.monotonic()

            yield tick

    @contextlib.contextmanager
    def snapshot(self):
        """Run several reads against one consistent snapshot.

        Inside the block, a writer's commits in another process are not
        visible (WAL snapshot isolation); every bulk read method already
        runs in its own snapshot.  The block holds the catalog's lock.
        """
        with self._rlock:
            conn = self._c()
            if conn.in_transaction or self._depth:
                yield self
                return
            conn.execute("BEGIN")
            try:
                yield self
            finally:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("COMMIT")

    # ------------------------------------------------------------------ meta
    def _put_meta(self, **items):
        getattr(self._meta_local, "memo", None) and self._meta_local.memo.clear()
        self._conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            [(k, dumps(v)) for k, v in items.items()],
        )

    def get_meta(self, key, default=None):
        """Return the JSON-decoded ``meta`` value of ``key`` (or ``default``)."""
        memo = getattr(self._meta_local, "memo", None)  # inside _meta.IndexMeta.meta_read_once(): read once
        if memo is None or key not in memo:
            rows = self._select("SELECT value FROM meta WHERE key=?", (key,))
            if memo is None:
                return _decoded(self.path, key, rows[0][0] if rows else None, default)
            memo[key] = rows[0][0] if rows else None
        return _decoded(self.path, key, memo[key], default)

    def meta(self) -> dict:
        """All ``meta`` items, JSON-decoded."""
        return {k: _decoded(self.path, k, v, None) for k, v in self._select("SELECT key, value FROM meta")}

    @property
    def generation(self) -> int:
        """Counter bumped by every write transaction changing tracks or vectors."""
        return int(self.get_meta("generation", 0))

    @property
    def vectors_generation(self) -> int:
        """Counter bumped when per-track vectors are added, replaced or removed.

        FAISS files record this value; a mismatch means they are stale.
        """
        return int(self.get_meta("vectors_generation", 0))

    # ----------------------------------------------------------------- reads
    @contextlib.contextmanager
    def _db_errors(self):
        """Report SQLite failures (corruption, disk full, I/O) as CatalogError."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise CatalogError(self.path, f"SQLite error: {exc}") from exc

    def _select(self, sql, params=()):
        with self._rlock, self._db_errors():
            return self._c().execute(sql, params).fetchall()

    def integrity_check(self) -> list:
        """Run SQLite's ``PRAGMA integrity_check`` and foreign-key check.

        Returns a list of problems (empty when the file is sound).
        """
        problems = [r[0] for r in self._select("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [f"foreign key: {r}" for r in self._select("PRAGMA foreign_key_check")]
        return problems


def _decoded(path, key, text, default):
    """A ``meta`` row's JSON ``text`` decoded (``default`` for ``None``); ``CatalogError`` when it is not JSON."""
    if text is None:
        return default
    try:
        return json.loads(text)
    except ValueError:
        raise CatalogError(path, f"meta[{key!r}] is not valid JSON") from None


def _uri_path(path: str) -> str:
    from urllib.parse import quote

    return quote(os.path.abspath(path))


def _read_pid(fd):
    try:
        data = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(data) if data.isdigit() else None
    except OSError:
        return None
