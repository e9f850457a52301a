"""A `codec serve` process on 127.0.0.1 for demos, benchmarks and tests: started on a free port,
its port read from the line it prints once listening."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from codec.errors import CodecError


class LocalServer:
    """``codec serve --models MODELS --port 0 ARGS`` as a child process; ``port`` (and
    ``health_port`` with ``--health-port``) once it listens."""

    def __init__(self, models: Path, *args: str, port: int = 0, log: bool = True, prelude: str = "") -> None:
        """``prelude``: Python run in the server process before the command line is read."""
        script = f"{prelude}\nfrom codec.cli import main\nmain()"
        command = [sys.executable, "-c", script, "serve", "--models", str(models), "--port", str(port), *args]
        stderr = subprocess.PIPE if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("listening on "):
            self.stop()
            raise CodecError(f"codec serve did not start ({line.strip() or 'no output'})")
        self.port = int(line.split()[2].rsplit(":", 1)[1])
        health = re.search(r"health on \S+:(\d+)", line)
        self.health_port = int(health.group(1)) if health else None

    def memory_mib(self, field: str = "VmRSS") -> float:
        """The server's resident memory now (VmRSS) or at its peak (VmHWM), in MiB (Linux)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def url(self, name: str, scheme: str = "grpc", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}/{name}"

    def drain(self, timeout: float = 30) -> int:
        """SIGTERM, as an orchestrator stops it; returns its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> str:
        """Kill it if it still runs; returns what it logged."""
        if self.proc.poll() is None:
            self.proc.kill()
        _, err = self.proc.communicate(timeout=30)
        return err or ""
