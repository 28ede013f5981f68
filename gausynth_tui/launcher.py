"""The `gausynth` command: the app when asked for it, otherwise the engine's headless CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("attach", "app"):
        from .app import run_app

        return run_app(args[1:] if args else [])
    from gausynth_engine import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
