"""The S3 server of the object-storage tests: scripts/s3_server.py (the benchmark starts the same one)."""

from tests.helpers.scripts import load_script

_server = load_script("s3_server")
S3Server = _server.S3Server
Request = _server.Request
s3_server = _server.s3_server
upload = _server.upload
