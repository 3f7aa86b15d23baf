"""Helpers every command module uses: JSON and table output, M3U files, query arguments."""

from __future__ import annotations

import json
import math
import os

from .._utils import atomic_write, json_default

__all__ = ["print_json", "records", "write_m3u", "query_arg"]


def _cli_default(o):
    try:
        return json_default(o)
    except TypeError:
        return str(o)


def print_json(obj) -> None:
    """Print ``obj`` as indented JSON (NumPy values converted; anything else as its ``str``)."""
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=_cli_default))


def records(df) -> list[dict]:
    """DataFrame rows as plain dicts, missing values as ``None`` (valid JSON)."""
    out = []
    for r in df.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()})
    return out


def write_m3u(path, rows) -> None:
    """Write ``rows`` (dicts with ``path``, optional ``artist``/``title``) as an M3U playlist, atomically."""

    def write(fh):
        fh.write("#EXTM3U\n")
        for r in rows:
            title = " - ".join(x for x in (r.get("artist"), r.get("title")) if isinstance(x, str) and x)
            fh.write(f"#EXTINF:-1,{title}\n{r['path']}\n")

    atomic_write(path, write, binary=False, encoding="utf-8", newline="")


def query_arg(q: str):
    """A track id (digits that are not an existing file) or a path."""
    return int(q) if q.strip().isdigit() and not os.path.exists(q) else q
