"""Command-line interface: ``recommender <command> …`` (also ``python -m recommender``).

A thin layer over the library: it parses arguments, loads the model once,
calls the facade and prints tables (or JSON with ``--json``).  Commands that
only read an index (``similar`` by id/path, ``info``, ``failures``) never import
TensorFlow.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import RecommenderError

from . import bans, describe, index, playlists, serve, tag, train

__all__ = ["main", "build_parser", "COMMANDS"]

#: Command modules, in the order their commands appear in ``--help``; each defines
#: ``add_commands(subparsers)`` (imports inside the command functions stay lazy).
COMMANDS = (index, describe, playlists, tag, bans, train, serve)


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recommender", description="Content-based music recommendation.")
    from .. import __version__

    p.add_argument("--version", action="version", version=f"recommender {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for module in COMMANDS:
        module.add_commands(sub)
    return p




def main(argv=None) -> int:
    # Every output is valid UTF-8: a path that is not (a non-UTF-8 file name, kept
    # losslessly with surrogateescape) is printed with \xNN escapes, never as raw bytes.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):  # not a text stream (e.g. replaced by a test)
            pass
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    from ..models import quiet_startup

    try:
        # TensorFlow is imported only if a command needs the CNN; its start-up chatter is hidden
        with quiet_startup(args.verbose < 2):
            return int(args.func(args) or 0)
    except RecommenderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: everything analysed so far is saved; run the same command again to resume",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `recommender similar … | head`
        return 0
