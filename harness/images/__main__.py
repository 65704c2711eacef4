"""``python -m harness.images bootstrap [--force]``: build the docker runtime's images.

Exit status 0 when every image is ready, 3 with one message when a step failed.
"""

from __future__ import annotations

import argparse
import sys
import time

from harness.errors import HarnessError
from harness.images.bootstrap import bootstrap_images, images_env_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.images")
    commands = parser.add_subparsers(dest="command", required=True)
    boot = commands.add_parser("bootstrap", help="build missing or stale images")
    boot.add_argument("--force", action="store_true", help="rebuild every image")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        names = bootstrap_images(force=args.force, progress=lambda line: print(line, flush=True))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for var, name in names.items():
        print(f"{var}={name}")
    print(f"images ready in {time.monotonic() - started:.1f} s; recorded in {images_env_path()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
