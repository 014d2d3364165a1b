"""``python -m padless.train CONFIG.yaml [key=value ...] --run-dir RUN [--resume RUN]``: the
entry point torchrun starts once per rank (see `padless.train.loop` for the commands)."""

from __future__ import annotations

import argparse
import sys

from padless.data.errors import PadlessInputError
from padless.train.loop import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m padless.train", description=__doc__)
    parser.add_argument("config", help="training config (YAML)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
    parser.add_argument("--run-dir", required=True, help="run folder (checkpoints, metrics)")
    parser.add_argument("--resume", default=None, help="continue from this run folder or file")
    args = parser.parse_args(argv)
    try:
        run(args.config, args.overrides, args.run_dir, args.resume)
    except (PadlessInputError, FileExistsError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
