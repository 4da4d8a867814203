"""A real S3 server on 127.0.0.1 for the object-storage tests and ``bench.py --s3``: moto's server
(``moto[server]``) behind a WSGI layer that logs every request, so that a test can count what a
mount asked for (no whole-tar GET, a remount that only lists). Nothing leaves the machine."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV = {  # what the mounts and the test's own client need: this server, dummy credentials
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # /bucket/key, URL-decoded
    query: str
    range: str | None  # the Range header, if any

    @property
    def is_listing(self) -> bool:
        return self.method == "GET" and ("list-type" in self.query or self.path.count("/") <= 1)

    @property
    def is_get(self) -> bool:
        return self.method == "GET" and not self.is_listing


class S3Server:
    """moto's S3 on a free port of 127.0.0.1; ``requests`` lists what it was asked, ``stop`` and
    ``start`` take it down and bring it back on the same port with the same buckets. ``log``: also
    append each request to that file as a JSON line (the benchmark runs the server in a process of
    its own, so that its clients do not share its interpreter lock)."""

    def __init__(self, port: int = 0, log: Path | None = None) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self._app = DomainDispatcherApplication(create_backend_app)
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._log = open(log, "a", buffering=1) if log is not None else None  # noqa: SIM115 (the server's life)
        if not port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.refusing = False  # answer every request 403 ExpiredToken, as S3 does once credentials expire

    def _logged(self, environ: dict, start_response: Any) -> Any:
        from urllib.parse import unquote

        request = Request(environ["REQUEST_METHOD"], unquote(environ.get("PATH_INFO", "")),
                          environ.get("QUERY_STRING", ""), environ.get("HTTP_RANGE"))
        with self._lock:
            self.requests.append(request)
            if self._log is not None:
                self._log.write(json.dumps([request.method, request.path, request.query, request.range]) + "\n")
        if self.refusing:
            body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ExpiredToken</Code>'
                    b"<Message>The provided token has expired.</Message></Error>")
            start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
            return [body]
        return self._app(environ, start_response)

    def start(self) -> None:
        import logging

        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
        self._server = make_server("127.0.0.1", self.port, self._logged, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join()
            self._server = None

    def clear(self) -> list[Request]:
        """The requests since the last clear (and forget them)."""
        with self._lock:
            out, self.requests = self.requests, []
        return out

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")


@contextmanager
def aws_environment(url: str) -> Iterator[None]:
    """``AWS_ENDPOINT_URL`` and the dummy credentials set in this process's environment (inherited
    by the ``slyfs`` processes it starts), restored on exit."""
    saved = {k: os.environ.get(k) for k in (*ENV, "AWS_ENDPOINT_URL")}
    os.environ.update(ENV, AWS_ENDPOINT_URL=url)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """A running server, with ``aws_environment`` naming it."""
    server = S3Server()
    server.start()
    with aws_environment(server.url):
        try:
            yield server
        finally:
            server.stop()


def upload(client: Any, root: Path, bucket: str, prefix: str, threads: int = 1) -> int:
    """Put every file under ``root`` into ``bucket`` below ``prefix``; the number of objects."""
    from concurrent.futures import ThreadPoolExecutor

    files = [p for p in sorted(root.rglob("*")) if p.is_file()]

    def put(path: Path) -> None:
        client.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(root).as_posix()}", Body=path.read_bytes())

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, files))
    return len(files)


class ServerProcess:
    """The same server in a child process (``python scripts/s3_server.py PORT LOG``): ``clear``
    reads the requests it logged since the last call."""

    def __init__(self, log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        log.write_text("")
        self._read = 0
        self._proc = subprocess.Popen([sys.executable, __file__, str(self.port), str(log)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the S3 server did not start")

    def clear(self) -> list[Request]:
        with open(self.log) as f:
            f.seek(self._read)
            lines = f.readlines()
            self._read = f.tell()
        return [Request(*json.loads(line)) for line in lines if line.endswith("\n")]

    def client(self) -> Any:
        return S3Server.client(self)  # type: ignore[arg-type]

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)


@contextmanager
def s3_server_process(log: Path) -> Iterator[ServerProcess]:
    """``s3_server`` with the server in a child process."""
    server = ServerProcess(log)
    with aws_environment(server.url):
        try:
            yield server
        finally:
            server.stop()


if __name__ == "__main__":
    child = S3Server(int(sys.argv[1]), Path(sys.argv[2]))
    child.start()
    assert child._thread is not None
    child._thread.join()
