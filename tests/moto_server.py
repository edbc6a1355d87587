"""A real S3-compatible server on loopback (moto), so object-store tests speak actual HTTP.

Import the fixture into a test module with ``from moto_server import s3_endpoint``.

The server runs in a child process rather than a thread: importing moto hooks a stubber
into every botocore client of the importing process, and the tests must exercise plain
boto3; the child also uses a second CPU, which matters when thousands of objects are
uploaded.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from collections.abc import Iterator

import pytest

#: Fake credentials: moto accepts any, and setting them keeps boto3 from looking further
#: (shared profiles, the instance metadata service) and from ever reaching real AWS.
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: Variables that would make boto3 use something other than the fake credentials above.
CLEARED_ENV = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
               "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
STARTUP_TIMEOUT = 60.0

# Port 0 lets the kernel pick a free port with no race; the child reports it on stdout,
# then serves until its stdin closes (which also happens if the test process dies).
_SERVER = """
import logging, sys
try:
    from moto.server import ThreadedMotoServer
except ImportError as exc:
    print("import-error", exc, flush=True)
    sys.exit(0)
logging.getLogger("werkzeug").setLevel(logging.WARNING)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a moto S3 server on 127.0.0.1 (a free port), with fake credentials in the environment.

    The environment is restored, and the server stopped, when the session ends.
    """
    work = tmp_path_factory.mktemp("moto")
    log_path = work / "server.log"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in FAKE_ENV.items():
            mp.setenv(name, value)
        for name in CLEARED_ENV:
            mp.delenv(name, raising=False)
        # A developer's own ~/.aws files must not change what the tests see.
        mp.setenv("AWS_CONFIG_FILE", str(work / "absent"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(work / "absent"))
        # A proxy configured for the outside world must not intercept loopback traffic.
        no_proxy = ",".join(v for v in (os.environ.get("NO_PROXY"), "127.0.0.1,localhost") if v)
        mp.setenv("NO_PROXY", no_proxy)
        mp.setenv("no_proxy", no_proxy)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=log, text=True)
        try:
            ready, _, _ = select.select([proc.stdout], [], [], STARTUP_TIMEOUT)
            line = proc.stdout.readline() if ready else ""
            if line.startswith("import-error"):
                pytest.skip(f"moto cannot be imported ({line.split(' ', 1)[1].strip()}); "
                            "the S3 tests need its server: pip install 'moto[server]'")
            if not line.strip().isdigit():
                raise RuntimeError(f"moto server did not start: {log_path.read_text(errors='replace')[-2000:]}")
            yield f"http://127.0.0.1:{int(line)}"
        finally:
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()
