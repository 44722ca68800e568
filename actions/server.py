"""Action server entry point: rasa-sdk's app plus a readiness check.

    python -m actions.server --port 5055

GET /health answers while the process runs (rasa-sdk); GET /ready answers 200 only when
the index is loaded, 503 with the reason otherwise.
"""
from __future__ import annotations

import argparse
import logging
import os

from rasa_sdk.endpoint import create_app
from rasa_sdk.executor import ActionExecutor
from sanic import response

from . import runtime
from assistant.privacy import install_log_masking


def build_app():
    executor = ActionExecutor()
    executor.register_package("actions.actions")
    executor.register_package("actions.bundle_actions")
    executor.register_package("actions.ticket_actions")
    app = create_app(executor)

    @app.get("/ready")
    async def ready(_request):
        if runtime.retriever() is None:
            return response.json({"ready": False, "problem": runtime.problem()}, status=503)
        return response.json({"ready": True, "index": str(runtime.INDEX_DIR)})

    return app


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m actions.server")
    ap.add_argument("--port", type=int, default=int(os.environ.get("ACTION_PORT", 5055)))
    ap.add_argument("--host", default=os.environ.get("ACTION_HOST", "127.0.0.1"))
    ap.add_argument("--log-file", default=None)
    args = ap.parse_args()
    handlers = [logging.StreamHandler()] + ([logging.FileHandler(args.log_file)] if args.log_file else [])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers)
    install_log_masking()
    loaded = runtime.retriever()  # load now: a missing index is logged at start, not at the first question
    if loaded is not None:
        loaded.correct("")  # and the question correction's tables (about 1 s), not at the first question
    build_app().run(host=args.host, port=args.port, single_process=True, access_log=False)


if __name__ == "__main__":
    main()
