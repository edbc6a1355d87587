"""Which project source files a benchmark runs: the static import closure of its entry modules.

A results file records the files its benchmark depends on, each with its own digest
(``bench.common.code_state``), so ``python -m bench.check`` can tell which figures an edit made
stale. The closure is computed from the source text alone, without importing anything:

* every ``import a.b.c`` and ``from x import y`` anywhere in a file counts, inside functions,
  ``try`` blocks and ``if TYPE_CHECKING`` too (an over-approximation, never an omission of a
  static import); ``from . import x`` and ``from .mod import y`` are resolved against the
  importing module's package, and importing ``a.b.c`` also runs ``a`` and ``a.b``'s
  ``__init__.py``;
* module names map to folders as the installed package maps them, read from pyproject.toml's
  ``[tool.setuptools.package-dir]`` (``dedup.node`` is ``node/``, ``dedup.coordinator`` is
  ``coordinator/``, ...); other names map to the folder of the same name (``bench.x`` is
  ``bench/x.py``);
* only project files count: those under the mapped folders and ``bench/``; the standard
  library and installed packages are outside the closure;
* a compiled extension (``[[tool.setuptools.ext-modules]]``) counts as its C sources.

Dynamic imports (``importlib``) are not seen. A benchmark that runs the ``dedup`` command in a
subprocess names ``dedup.cli.main`` as an entry of its own, since no import leads there.
"""

from __future__ import annotations

import ast
import hashlib
import tomllib
from collections.abc import Iterable
from pathlib import Path

#: Not installed, run from the checkout: the benchmarks themselves.
EXTRA_DIRS = ("bench",)

def layout(root: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """From root/pyproject.toml: package name -> folder, and extension module -> its sources."""
    try:
        tool = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8")).get("tool", {})
    except FileNotFoundError:
        return {}, {}
    st = tool.get("setuptools", {})
    dirs = {name: folder.strip("/") for name, folder in st.get("package-dir", {}).items() if name}
    exts = {e["name"]: list(e.get("sources", [])) for e in st.get("ext-modules", [])}
    return dirs, exts


def project_dirs(dirs: dict[str, str]) -> set[str]:
    """Top-level folders that hold project code: those the package-dir mapping names, and bench/."""
    return {folder.split("/")[0] for folder in dirs.values()} | set(EXTRA_DIRS)


def module_file(name: str, root: Path, dirs: dict[str, str]) -> Path | None:
    """The project file that module `name` runs (``x.py`` or ``x/__init__.py``), or None when
    it is not a project module."""
    prefix = max((p for p in dirs if name == p or name.startswith(p + ".")), key=len, default=None)
    parts = name.split(".")
    if prefix is None:
        base = Path(*parts)
    else:
        base = Path(dirs[prefix], *parts[len(prefix.split(".")):])
    if base.parts[0] not in project_dirs(dirs):
        return None
    for candidate in (root / base / "__init__.py", root / base.with_name(base.name + ".py")):
        if candidate.is_file():
            return candidate
    return None


def _parents(name: str) -> list[str]:
    """`a.b.c` -> a, a.b, a.b.c: importing a module runs each enclosing package first."""
    parts = name.split(".") if name else []
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def imports(path: Path, module: str) -> set[str]:
    """Every module name a file may import (with enclosing packages), wherever the statement is.
    `module` is the file's own dotted name, for resolving relative imports."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.update(_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                up = package.split(".")
                if node.level - 1 >= len(up):
                    continue  # beyond the top-level package: Python refuses it too
                base = ".".join(up[:len(up) - (node.level - 1)])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            out.update(_parents(base))
            # `from pkg import name`: name may be a submodule; a name that is not resolves to no file.
            out.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return out


def closure(entries: Iterable[str], root: Path) -> list[str]:
    """Project files (paths relative to root, sorted) that running `entries` may import."""
    dirs, exts = layout(root)
    seen: set[str] = set()
    files: set[str] = set()
    todo = [p for e in entries for p in _parents(e)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in exts:
            files.update(s for s in exts[name] if (root / s).is_file())
            continue
        path = module_file(name, root, dirs)
        if path is None:
            continue
        rel = path.relative_to(root).as_posix()
        files.add(rel)
        todo.extend(imports(path, name) - seen)
    return sorted(files)


def all_files(root: Path) -> list[str]:
    """Every project file: the scope of a benchmark that does not name its entry modules."""
    dirs, exts = layout(root)
    files = {p.relative_to(root).as_posix() for d in project_dirs(dirs) for p in (root / d).rglob("*.py")
             if not any(part.startswith(".") for part in p.relative_to(root).parts)}  # bench/.cache: downloads
    files.update(s for sources in exts.values() for s in sources if (root / s).is_file())
    return sorted(files)


def file_digest(path: Path) -> str:
    """A file's own digest, as results record it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
