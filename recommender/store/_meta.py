"""What the ``meta`` of an index says its model's outputs are (a mix-in of :class:`~.catalog.Catalog`).

An index built with a regressor (``recommender index --model``; catalog meta
``value_names``) stores the regressor's outputs in the ``'tags'`` space, but
they are descriptors (``--where``, ``--sort``), not tags: ``get_meta("tags")``
is ``[]`` for it, so every tag-based feature (``--tag``, shared tags,
explanations, ``/api``) sees no tags, and :meth:`IndexMeta.no_tags_reason`
gives the sentence a refusal should print.
"""

from __future__ import annotations

import contextlib

__all__ = ["IndexMeta"]

_UNREAD, _ABSENT = object(), object()
_IMMUTABLE = (int, float, str, bool, type(None))


class _Items(tuple):
    """A memoised ``meta`` list of numbers and strings (handed out as a new list each time)."""


class IndexMeta:
    """Mix-in over a database with ``get_meta`` (:class:`~._sqlite.SQLiteDatabase`)."""

    @contextlib.contextmanager
    def meta_read_once(self):
        """Within the block, this thread reads each ``meta`` key (generation, tag names...) once:
        a query that asks for them ten times reads the database once.  Numbers, text and lists
        of them are decoded once (a list is copied for each caller); other values keep their
        text and are decoded afresh each call.  No lock is held.

        Blocks outside a transaction share what they read while nothing has written the
        database since (SQLite's ``PRAGMA data_version`` for other connections, which costs
        one read per block; :meth:`_put_meta` for this one): a server's queries read the
        ``meta`` table once per change instead of ~10 times each.
        """
        local = self._meta_local
        outer = getattr(local, "memo", None) is None
        local.memo = self._kept_meta() if outer else local.memo
        try:
            yield self
        finally:
            if outer:
                local.memo = None

    def _kept_meta(self) -> dict:
        """The ``{key: JSON text}`` read by earlier :meth:`meta_read_once` blocks, if still current."""
        if self._c().in_transaction:  # a snapshot or a write: its own view of the table
            return {}
        version = self._select("PRAGMA data_version")[0][0]
        kept = getattr(self, "_meta_kept", None)
        if kept is None or kept[0] != version:
            kept = self._meta_kept = (version, {})
        return kept[1]

    def _put_meta(self, **items):
        self._drop_meta_memo()  # this connection's own writes do not change data_version
        super()._put_meta(**items)

    def _drop_meta_memo(self) -> None:
        """Forget what blocks have read (a write, or a rolled-back transaction): from here this
        thread's block reads into a memo of its own, never into the one other blocks share (a
        value read inside a transaction that is later rolled back must reach no other block)."""
        self._meta_kept = None
        if getattr(self._meta_local, "memo", None) is not None:
            self._meta_local.memo = {}

    def get_meta(self, key, default=None):
        """The JSON-decoded ``meta`` value of ``key`` (or ``default``).

        ``"tags"`` of an index built with a regressor (meta ``value_names`` set) is ``[]``:
        its outputs are descriptors for ``--where``, not tags (:meth:`regressor_values`).
        """
        if key == "tags" and self.regressor_values():
            return []
        memo = getattr(self._meta_local, "memo", None)
        if memo is None:
            return super().get_meta(key, default)
        got = memo.get((key,), _UNREAD)  # inside meta_read_once(): a number, text or list of them is decoded once
        if got is _UNREAD:
            got = super().get_meta(key, _ABSENT)
            if got is _ABSENT or isinstance(got, _IMMUTABLE):
                memo[(key,)] = got
            elif isinstance(got, list) and all(isinstance(v, _IMMUTABLE) for v in got):
                memo[(key,)] = _Items(got)  # tag names: each caller gets a list of its own
            # else (dicts, nested lists): decoded afresh each call (callers may change them)
        if isinstance(got, _Items):
            return list(got)
        return default if got is _ABSENT else got

    def regressor_values(self) -> list:
        """The ``--where`` columns of an index built with a regressor (meta ``value_names``), else ``[]``."""
        return list(super().get_meta("value_names") or [])

    def output_names(self) -> list:
        """Names of the model outputs stored in the ``'tags'`` space: the tags, or a regressor's values."""
        return list(super().get_meta("tags") or [])

    def no_tags_reason(self) -> str | None:
        """Why this index has no tags (a plain sentence), or ``None`` when it has tags."""
        vals = self.regressor_values()
        if not vals:
            return None
        return f"this index was built with a regressor (values: {', '.join(vals)}): it has no tags; use --where"

    def model_outputs(self) -> dict:
        """What :meth:`recommender.Recommender.info` reports of the model's outputs: a regressor's
        value names (``{"model_values": [...]}``) or a multi-label model's per-label thresholds
        (``{"tag_thresholds": {label: p}}``); ``{}`` for the pretrained and classifier models."""
        out = {}
        if self.regressor_values():
            out["model_values"] = self.regressor_values()
        th = super().get_meta("tag_thresholds")
        if th:
            tags = self.output_names()
            out["tag_thresholds"] = dict(zip(tags, th)) if isinstance(th, list) and len(th) == len(tags) else th
        return out
