"""The tree's shape is checked, not only described: the import rule between the pipeline's stages,
the light side's independence from torch and the other training extras, and a wheel that holds
and imports every module."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("codec", "aecodec")
# Packages whose __init__ holds nothing: ``from codec.coding import kernels`` names them too.
UMBRELLAS = (*PACKAGES, "codec.coding")

# What each part may import of this project, besides itself. The stages form a line, frame ->
# latent -> integers -> bytes -> frame: io <- coding <- {measure, inspect, server, client}, and train
# may use coding, never the reverse. Only the command line and the demo compose everything. Inside
# coding, x264's common/ and encoder/ split: a player runs common, decoder and kernels, and nothing of
# decoding imports the encoder.
SHARED = ("codec.errors", "codec.cpus")
DECODE_SIDE = ("codec.coding.common", "codec.coding.decoder", "codec.coding.kernels")
ALLOWED = {
    "codec.errors": (),
    "codec.cpus": ("codec.errors",),
    "codec.net": SHARED,
    "codec.io": SHARED,
    "codec.coding": (),
    "codec.coding.kernels": (*SHARED, "codec.coding.common"),  # the reference twins build on the transform
    "codec.coding.common": (*SHARED, "codec.io", "codec.coding.kernels"),
    "codec.coding.decoder": (*SHARED, "codec.io", *DECODE_SIDE),
    "codec.coding.encoder": (*SHARED, "codec.io", *DECODE_SIDE),
    "codec.train": (*SHARED, "codec.io", "codec.coding"),
    "codec.measure": (*SHARED, "codec.io", "codec.coding", "codec.train"),
    "codec.inspect": (*SHARED, "codec.io", "codec.coding", "codec.train", "codec.measure"),
    "aecodec.v1": (),
    "aecodec.server": (*SHARED, "codec.net", "codec.io", "codec.coding", "aecodec.v1"),
    "aecodec.client": (*SHARED, "codec.net", "codec.io", *DECODE_SIDE, "aecodec.v1"),
    "codec.cli": PACKAGES,
    "codec.demo": PACKAGES,
}
# The parts a server image and a player hold: they must import with only the base dependencies,
# so none of the training, benchmark or test extras may be imported by them, even lazily.
LIGHT = ("codec.errors", "codec.cpus", "codec.net", "codec.io", "codec.coding", "aecodec")
EXTRAS = ("torch", "onnx", "skvideo", "matplotlib", "bjontegaard", "pytorch_msssim", "pytest")


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the project's packages under ``root``, by dotted name."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _part(name: str) -> str | None:
    """The entry of ALLOWED that ``name`` belongs to (the longest prefix)."""
    matches = [p for p in ALLOWED if name == p or name.startswith(p + ".")]
    return max(matches, key=len) if matches else None


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(root: Path = ROOT) -> list[str]:
    """Imports that break the rule, as 'module imports name (part may use ...)' lines."""
    found = []
    for name, path in modules(root).items():
        if name in PACKAGES:
            continue
        part = _part(name)
        if part is None:
            found.append(f"{name} belongs to no part of the layout")
            continue
        for imported in sorted(_imports(path)):
            if imported.split(".")[0] not in PACKAGES or imported in UMBRELLAS:
                continue
            target = _part(imported)
            if target is None:  # a name from a package's __init__, such as codec.__version__
                continue
            if target.startswith(part) or any(target.startswith(a) for a in ALLOWED[part]):
                continue
            found.append(f"{name} imports {imported} ({part} may use {', '.join(ALLOWED[part]) or 'nothing'})")
    for name, path in modules(root).items():
        if name.startswith(LIGHT):
            heavy = sorted(i for i in _imports(path) if i.split(".")[0] in EXTRAS)
            found.extend(f"{name} imports {i}, which a server image does not hold" for i in heavy)
    return sorted(set(found))


def test_every_import_follows_the_layout() -> None:
    assert violations() == []


def test_the_layout_rule_catches_a_backward_import(tmp_path: Path) -> None:
    """The checker is not vacuous: a coding module importing training, a player importing the
    server or the encoder, the decode loop importing the encoder and a bundle reader importing
    torch are each reported."""
    rooms = ("codec/io", "codec/coding/common", "codec/coding/decoder", "codec/coding/encoder", "codec/train")
    for package in (*rooms, "aecodec/client", "aecodec/server"):
        (tmp_path / package).mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "codec/__init__.py").write_text("")
    (tmp_path / "codec/coding/encoder/encode.py").write_text("from codec.train.model import AutoEncoder\n")
    (tmp_path / "codec/coding/decoder/decode.py").write_text("from codec.coding.encoder.encode import x\n")
    (tmp_path / "aecodec/client/player.py").write_text(
        "def f():\n    from aecodec.server.catalog import Entry\n    from codec.coding.encoder import encode\n"
    )
    (tmp_path / "codec/io/bundle.py").write_text("import json\nimport torch\nfrom codec.errors import CodecError\n")
    (tmp_path / "codec/train/loop.py").write_text(
        "from codec.coding.encoder.encode import x\nfrom codec.io import bundle\n"
    )
    found = violations(tmp_path)
    assert any(v.startswith("codec.coding.encoder.encode imports codec.train.model") for v in found)
    assert any(v.startswith("codec.coding.decoder.decode imports codec.coding.encoder.encode") for v in found)
    assert any(v.startswith("aecodec.client.player imports aecodec.server.catalog") for v in found)
    assert any(v.startswith("aecodec.client.player imports codec.coding.encoder") for v in found)
    assert any(v.startswith("codec.io.bundle imports torch") for v in found)
    assert not any(v.startswith("codec.train.loop") for v in found)


def _import_all(names: list[str], blocked: tuple[str, ...] = (), path: Path | None = None) -> dict[str, str]:
    """Import ``names`` in a fresh interpreter with ``blocked`` made unimportable (and ``path``
    first on sys.path); the file each module came from, by name."""
    script = (
        "import importlib, json, sys\n"
        f"sys.modules.update(dict.fromkeys({list(blocked)!r}))\n"  # None: 'import torch' raises ImportError
        f"{'' if path is None else f'sys.path.insert(0, {str(path)!r})'}\n"
        f"print(json.dumps({{n: importlib.import_module(n).__file__ for n in {names!r}}}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=path)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_light_side_imports_without_torch_or_any_extra() -> None:
    """Every module a server image or a player runs imports with torch, onnx and the benchmark
    and test extras unimportable."""
    light = [name for name in modules() if name.startswith(LIGHT)]
    assert "aecodec.server.servicer" in light and "codec.coding.decoder.decode" in light
    assert set(_import_all(light, EXTRAS)) == set(light)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel pip builds from a copy of the checkout's files (not its build folders, whose
    leftovers would hide a package the configuration no longer finds)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    for name in listed.stdout.splitlines():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(out),
        str(source),
    ]
    proc = subprocess.run(build, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (found,) = out.glob("aecodec-*.whl")
    return found


def test_the_wheel_holds_and_imports_every_module(wheel: Path, tmp_path: Path) -> None:
    """What pip installs (a server image, a player) has every module of the tree, and each imports
    from the installed copy, not from this checkout."""
    with zipfile.ZipFile(wheel) as whl:
        held = set(whl.namelist())
        whl.extractall(tmp_path)
    tree = {str(path.relative_to(ROOT)) for path in modules().values()}
    assert tree - held == set() and "codec/coding/common/inter_tables.json" in held
    names = sorted(modules())
    where = _import_all(names, path=tmp_path)
    outside = {n: f for n, f in where.items() if not Path(f).is_relative_to(tmp_path)}
    assert outside == {}
