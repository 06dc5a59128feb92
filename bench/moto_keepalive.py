"""moto's AWS stand-in served with HTTP/1.1 keep-alive, as AWS endpoints are.

`moto_server` (werkzeug's development server) answers every request with `Connection: close`,
so each boto3 call pays a new TCP connection: in the benchmark that is ~6% of our process's CPU
(connect, getaddrinfo, close in every S3 and SNS call) that production never pays, since boto3
keeps its connections to AWS open. The benchmark serves the same moto application with waitress,
which keeps connections open:

    python -m bench.moto_keepalive --host 127.0.0.1 --port PORT
"""

from __future__ import annotations

import argparse
import os

import waitress
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)
    waitress.serve(app, host=args.host, port=args.port, threads=8, _quiet=True)


if __name__ == "__main__":
    main()
