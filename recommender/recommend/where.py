"""``--where``: filter tracks on their stored descriptors (and a trained regressor's values).

A condition is ``NAME OP VALUE`` with ``OP`` one of ``>``, ``>=``, ``<``,
``<=``, ``=`` (or ``==``), ``!=``; conditions are joined by ``and``::

    energy>0.6
    tempo_bpm>=100 and tempo_bpm<130
    mode=minor and loudness_db>-20

Numbers compare numerically; a word (or a quoted string) only with ``=`` and
``!=`` (``key=A``, ``mode=minor``).  Names are checked against the
descriptor columns an index stores (``tempo_bpm``, ``tempo_confidence``,
``key``, ``mode``, ``loudness_db`` and the values of a regressor the index
was built with): :func:`check_columns`.  A track without a value for a
name never passes.

>>> w = parse_where("energy>0.6 and tempo_bpm<=130")
>>> passes(w, {"energy": 0.7, "tempo_bpm": 120.0})
True
>>> passes(w, {"energy": 0.5, "tempo_bpm": 120.0})
False
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

from ..errors import ParameterError

__all__ = ["OPS", "Condition", "check_columns", "mask", "parse_order", "parse_where", "passes"]

OPS = (">=", "<=", "!=", "==", ">", "<", "=")
_COND = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.:-]*)\s*(>=|<=|!=|==|>|<|=)\s*(.+?)\s*$")
_AND = re.compile(r"(?:^|\s+)and(?:\s+|$)", re.IGNORECASE)
_OR = re.compile(r"(?:^|\s|\|)(?:or|\|\|?)(?:\s|$)|\|\|", re.IGNORECASE)


class Condition(NamedTuple):
    """One ``name op value`` test; ``value`` is a float or a str (``=``/``!=`` only)."""

    name: str
    op: str
    value: object

    def __str__(self):
        return f"{self.name}{self.op}{self.value}"


def _value(text, cond, op):
    s = text.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        v = s[1:-1]
    else:
        try:
            v = float(s)
        except ValueError:
            v = s
        else:
            if not math.isfinite(v):
                raise ParameterError(f"where={cond!r}: {s!r} is not a finite number")
            return v
    if op not in ("=", "==", "!="):
        raise ParameterError(f"where={cond!r}: {op} needs a number, got {s!r} (rule: words compare only "
                             "with = or !=)")
    if not v:
        raise ParameterError(f"where={cond!r}: empty value")
    return v


def parse_where(text) -> tuple:
    """Conditions of a ``--where`` text (a tuple of :class:`Condition`).

    Raises
    ------
    ParameterError
        Empty text, a part that is not ``NAME OP VALUE``, a word compared with
        ``<``/``>``, a NaN/inf number; the message quotes the part.
    """
    if not isinstance(text, str) or not text.strip():
        raise ParameterError(f"where={text!r}: expected conditions such as 'energy>0.6 and tempo_bpm<130'")
    if _OR.search(text):
        raise ParameterError(f"where={text!r}: only 'and' may join conditions ('or' is not supported); "
                             "run one query per alternative")
    out = []
    for part in _AND.split(text.strip()):
        m = _COND.match(part)
        if m is None:
            raise ParameterError(f"where={part!r}: expected NAME OP VALUE with OP one of > >= < <= = != "
                                 "(conditions joined by 'and'), e.g. 'energy>0.6'")
        name, op, raw = m.groups()
        op = "=" if op == "==" else op
        out.append(Condition(name, op, _value(raw, part, op)))
    return tuple(out)


def check_columns(where, columns, what="where") -> None:
    """Every name of ``where`` must be one of ``columns`` (the index's descriptor columns).

    ``what`` names the option in the message (``"where"``, ``"sort"``).

    Raises
    ------
    ParameterError
        Naming the unknown name and listing the known ones.
    """
    cols = [str(c) for c in columns]
    for c in where:
        if c.name not in cols:
            raise ParameterError(f"{what}: no descriptor {c.name!r} in this index (known: {', '.join(sorted(cols))}; "
                                 "a trained regressor's values appear after `recommender index --model MODEL`)")


def _test(v, c: Condition) -> bool:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return False
    if isinstance(c.value, str):
        eq = str(v).casefold() == c.value.casefold()
        return eq if c.op == "=" else not eq
    try:
        x = float(v)
    except (TypeError, ValueError):
        return False
    if math.isnan(x):
        return False
    return {">": x > c.value, ">=": x >= c.value, "<": x < c.value, "<=": x <= c.value,
            "=": x == c.value, "!=": x != c.value}[c.op]


def passes(where, row) -> bool:
    """Whether one track's descriptors (a dict or a pandas Series) meet every condition."""
    get = row.get
    return all(_test(get(c.name), c) for c in where)


def mask(where, frame):
    """Boolean Series over the rows of a descriptors DataFrame (``catalog.descriptors()``)."""
    import pandas as pd

    ok = pd.Series(True, index=frame.index)
    for c in where:
        col = frame[c.name] if c.name in frame else pd.Series(None, index=frame.index, dtype=object)
        ok &= col.map(lambda v, c=c: _test(v, c)).astype(bool)
    return ok


def parse_order(text) -> tuple:
    """``"energy"`` / ``"energy desc"`` / ``"-energy"`` → ``(name, descending)`` for sorting by a descriptor.

    Raises
    ------
    ParameterError
        Not ``NAME [asc|desc]``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ParameterError(f"sort={text!r}: expected NAME, NAME desc or -NAME")
    parts = text.split()
    name, desc = parts[0], False
    if name.startswith("-"):
        name, desc = name[1:], True
    if len(parts) == 2 and parts[1].lower() in ("asc", "desc"):
        desc = parts[1].lower() == "desc"
    elif len(parts) != 1:
        raise ParameterError(f"sort={text!r}: expected NAME, NAME desc or -NAME")
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_.:-]*$", name):
        raise ParameterError(f"sort={text!r}: {name!r} is not a descriptor name")
    return name, desc
