"""``oms demo`` as a person runs it: Ctrl-C mid-storm stops quickly with one line and keeps a finished summary;
a busy port is one clear line, at once; the start page links what a new user needs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _oms(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "api.commands", "demo", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_ctrl_c_mid_storm_stops_within_two_seconds_and_keeps_the_summary(tmp_path):
    finished = "<html>a finished storm's summary</html>"
    (tmp_path / "summary.html").write_text(finished)
    proc = _oms("--out", str(tmp_path), "--port", "0", "--faults", "3", "--speed", "60")
    lines = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # wait until the storm runs (its status lines come every 10 s)
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("[storm time"):
            break
    else:
        proc.kill()
        raise AssertionError("the storm did not start: " + "".join(lines[-20:]))
    url = next(line.split()[3] for line in lines if line.startswith("OMS service on"))
    import httpx

    page = httpx.get(url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for link in ('href="/maps/public"', 'href="/docs"', 'href="/session"'):
        assert link in page.text
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - t0
    assert took < 2.0, f"took {took:.1f} s to stop"
    assert proc.returncode == 130
    assert "Traceback" not in err and "Traceback" not in out, err[-2000:]
    stopped = [line for line in out.splitlines() if line.startswith("stopped")]
    assert len(stopped) == 1 and "storm time" in stopped[0], out[-1000:]
    assert (tmp_path / "summary.html").read_text() == finished


def test_busy_port_is_one_line_at_once(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        t0 = time.monotonic()
        proc = _oms("--out", str(tmp_path), "--port", str(port))
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert time.monotonic() - t0 < 10  # before the territory is built (that alone takes longer)
    assert "Traceback" not in err and err.count("\n") == 1
    assert f":{port}" in err and "PORT=" in err
