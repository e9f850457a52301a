"""The compiled kernels' disk cache, in real processes on a read-only copy of the package: pre-built
beside the source, every kernel loads from it with nothing writable; with nothing pre-built, every
kernel compiles, without a word on stderr (codec.coding.kernels.cache)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import codec

# Warms every kernel and reports, over every numba dispatcher of the compiled module, how many
# signatures loaded from a disk cache and how many compiled.
PROBE = """
import json
from numba.core.dispatcher import Dispatcher
from codec.coding import kernels
from codec.coding.kernels import compiled
kernels.warm()
stats = [d.stats for d in vars(compiled).values() if isinstance(d, Dispatcher)]
print(json.dumps({"file": compiled.__file__, "hits": sum(sum(s.cache_hits.values()) for s in stats),
                  "misses": sum(sum(s.cache_misses.values()) for s in stats)}))
"""


def _chmod(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o200 if writable else mode & ~0o222)


@pytest.fixture
def install(tmp_path: Path) -> Iterator[Path]:
    """A copy of the package as ``pip install --target`` lays it out, with no cache from this tree;
    writable until :func:`_probe` runs on it read-only."""
    site = tmp_path / "site"
    shutil.copytree(Path(codec.__file__).parent, site / "codec", ignore=shutil.ignore_patterns("__pycache__"))
    yield site
    _chmod(tmp_path, writable=True)


def _probe(site: Path, home: Path, read_only: bool, **env: str) -> dict:
    """Run PROBE on ``site`` with ``home`` as HOME and no NUMBA_CACHE_DIR unless given; where
    ``read_only``, neither ``site`` nor ``home`` can be written, even by root (which is then run
    without the capability to override file modes). Fails on any output to stderr."""
    prefix: list[str] = []
    if read_only:
        _chmod(site, writable=False)
        _chmod(home, writable=False)
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("root overrides file modes, and setpriv (util-linux) is missing to stop it")
            prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "AECODEC_", "XDG_CACHE_HOME"))}
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", PROBE],
        env={**clean, "HOME": str(home), "PYTHONPATH": str(site), **env},
        cwd=site,  # not this tree, which `python -c` would import first
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    result = json.loads(proc.stdout)
    assert Path(result["file"]).is_relative_to(site)
    return result


def test_with_nothing_writable_every_kernel_compiles_silently(install: Path, tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    result = _probe(install, tmp_path / "home", read_only=True)
    assert result["misses"] > 0 and result["hits"] == 0


def test_a_cache_prebuilt_beside_the_source_loads_where_nothing_is_writable(install: Path, tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    built = _probe(install, tmp_path / "home", read_only=False)  # the installer's warm-up
    assert built["misses"] > 0 and list((install / "codec" / "coding" / "kernels" / "__pycache__").glob("*.nbi"))
    assert not (tmp_path / "home" / ".cache").exists()
    loaded = _probe(install, tmp_path / "home", read_only=True)
    assert loaded["misses"] == 0 and loaded["hits"] > 0
    # Preferred to an empty writable NUMBA_CACHE_DIR (the image's /tmp/numba), which it leaves empty.
    empty = tmp_path / "numba"
    loaded = _probe(install, tmp_path / "home", read_only=True, NUMBA_CACHE_DIR=str(empty))
    assert loaded["misses"] == 0 and loaded["hits"] > 0 and not list(empty.rglob("*.nbi"))
