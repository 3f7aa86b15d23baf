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


class IndexMeta:
    """Mix-in over a database with ``get_meta`` (:class:`~._sqlite.SQLiteDatabase`)."""

    @contextlib.contextmanager
    def meta_read_once(self):
        """Within the block, this thread reads each ``meta`` key (generation, tag names...) once
        (:meth:`~._sqlite.SQLiteDatabase.get_meta` keeps the text, decoded afresh each call): a
        query that asks for them ten times reads the database once.  No lock is held."""
        local = self._meta_local
        outer = getattr(local, "memo", None) is None
        local.memo = {} if outer else local.memo
        try:
            yield self
        finally:
            if outer:
                local.memo = None

    def get_meta(self, key, default=None):
        """The JSON-decoded ``meta`` value of ``key`` (or ``default``).

        ``"tags"`` of an index built with a regressor (meta ``value_names`` set) is ``[]``:
        its outputs are descriptors for ``--where``, not tags (:meth:`regressor_values`).
        """
        if key == "tags" and self.regressor_values():
            return []
        return super().get_meta(key, default)

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
