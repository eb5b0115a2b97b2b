"""`python -m featurehouse.serving`: run the prediction service (what `featurehouse serve`
runs), e.g.

    python -m featurehouse.serving --use-case shop_orders --port 8000
    python -m featurehouse.serving --serving '{"workers": 2, "poll_interval": "10s"}'
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from featurehouse.errors import FeaturehouseError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m featurehouse.serving", description=__doc__)
    parser.add_argument("--env", "-e", default=None, help="Environment (default: local).")
    parser.add_argument("--conf-dir", type=Path, default=None, help="The conf/ folder.")
    parser.add_argument("--use-case", "-u", action="append", help="Use case (repeatable).")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--serving", default=None, help="Serving settings as JSON, over conf.")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        from featurehouse.config import load_settings
        from featurehouse.discovery import load_use_cases
        from featurehouse.serving.server import serve
        from featurehouse.serving.settings import serving_settings

        settings = load_settings(args.env, conf_dir=args.conf_dir)
        overrides = json.loads(args.serving) if args.serving else {}
        for key in ("host", "port", "workers"):
            if getattr(args, key) is not None:
                overrides[key] = getattr(args, key)
        serving = serving_settings(settings, overrides)
        use_cases = load_use_cases(settings, args.use_case or None)
        serve(settings, use_cases, serving, conf_dir=args.conf_dir, log_level=args.log_level)
    except (FeaturehouseError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
