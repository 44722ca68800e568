"""python -m web --port 8080 --rasa-url http://127.0.0.1:5005 --voice-url http://127.0.0.1:8090"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from aiohttp import web

from .guard import GuardConfig
from .server import Config, make_app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m web")
    # the public entry point: loopback unless WEB_HOST says otherwise (0.0.0.0 behind a firewall)
    ap.add_argument("--host", default=os.environ.get("WEB_HOST", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--rasa-url", default=os.environ.get("RASA_URL", "http://127.0.0.1:5005"))
    ap.add_argument("--voice-url", default=os.environ.get("VOICE_URL", "http://127.0.0.1:8090"))
    ap.add_argument("--store", default=os.environ.get("ASSISTANT_STORE", "build/data/assistant.db"))
    ap.add_argument("--index", default=os.environ.get("ASSISTANT_INDEX", "build/indexes/kb"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        guard = GuardConfig.from_env(os.environ)
    except ValueError as exc:
        print(f"error: {exc} (see web/guard.py for the ASSISTANT_LIMIT_* settings)", file=sys.stderr)
        return 2
    cfg = Config(rasa_url=args.rasa_url, voice_url=args.voice_url, store=args.store, index=args.index,
                 token=os.environ.get("COPILOT_TOKEN") or None, guard=guard)
    if not cfg.token:
        print("warning: COPILOT_TOKEN is not set: /copilot refuses everyone (401)", file=sys.stderr)
    web.run_app(make_app(cfg), host=args.host, port=args.port, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
