"""The package's structure (issue 30, ARCHITECTURE.md "Layers"), checked from the source:

* every import of fastprep/, counting the ones inside functions, goes down the layers:
  leaves (_errors, _checks, _util, _build, the native _core) < io < transforms < data, offline
  < ray, timm, cli, bench (and the package's __init__ and _compat above all);
* the module graph has no cycle;
* no module imports another subpackage's private modules or names (a subpackage's other
  modules see its public names through its __init__), nor a private name of a leaf;
* csrc/: one definition of each ISA target macro, Python headers only in csrc/python/, and no
  kernel signature carries the SIMD level outside the dispatcher (Note [SIMD dispatch]).
"""
import ast
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "fastprep")
CSRC = os.path.join(ROOT, "csrc")
needs_source = pytest.mark.skipif(not os.path.isfile(os.path.join(PKG, "__init__.py")) or not os.path.isdir(CSRC),
                                  reason="checks the source tree (not present beside an installed wheel's tests)")

LEAVES = {"fastprep._errors", "fastprep._checks", "fastprep._util", "fastprep._build", "fastprep._core"}
LAYER = {"io": 1, "transforms": 2, "data": 3, "offline": 3, "bench": 4}
TOP = {"fastprep.ray": 4, "fastprep.timm": 4, "fastprep.cli": 4, "fastprep.__main__": 5, "fastprep": 6, "fastprep._compat": 5}


def layer(mod):
    if mod in LEAVES:
        return 0
    if mod in TOP:
        return TOP[mod]
    parts = mod.split(".")
    return LAYER.get(parts[1], None) if len(parts) > 1 else None


def modules():
    out = {}
    for path in glob.glob(os.path.join(PKG, "**", "*.py"), recursive=True):
        rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        name = rel[: -len(".__init__")] if rel.endswith(".__init__") else rel
        out[name] = path
    return out


def is_package(name):
    return name.endswith(("fastprep",)) or os.path.isdir(os.path.join(ROOT, *name.split(".")))


def resolve(importer, level, module):
    """The absolute module a relative import names (importer: the importing module's name)."""
    if level == 0:
        return module
    base = importer.split(".")
    if not is_package(importer):
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports(name, path, known):
    """[(target module, imported name or None, line)] of every import in the file, at any depth."""
    out = []
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("fastprep"):
                    out.append((a.name, None, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            target = resolve(name, node.level, node.module)
            if not target.startswith("fastprep"):
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in known or sub == "fastprep._core":
                    out.append((sub, None, node.lineno))  # a submodule
                else:
                    out.append((target, a.name, node.lineno))
    return out


def owner(mod):
    """The subpackage a module belongs to (fastprep.io, ...), or the root package for the rest."""
    parts = mod.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYER) else "fastprep"


@needs_source
def test_imports_go_down_the_layers_without_cycles_or_private_reach():
    known = modules()
    graph, problems = {}, []
    for name, path in sorted(known.items()):
        graph[name] = set()
        mine = layer(name)
        assert mine is not None, f"{name} is in no layer: add it to tests/test_layout.py and ARCHITECTURE.md"
        for target, imported, line in imports(name, path, known):
            where = f"{os.path.relpath(path, ROOT)}:{line}"
            theirs = layer(target)
            if theirs is None:
                problems.append(f"{where}: imports {target}, which is in no layer")
                continue
            if theirs > mine:
                problems.append(f"{where}: {name} (layer {mine}) imports {target} (layer {theirs})")
            if target != name:
                graph[name].add(target)
            # private reach: another subpackage's private module or name, or a leaf's private name
            same = owner(target) == owner(name) or target == owner(name)
            last = target.rsplit(".", 1)[-1]
            if not same and target not in LEAVES and last.startswith("_") and target != "fastprep._compat":
                problems.append(f"{where}: {name} imports {target}, a private module of another subpackage")
            if imported and imported.startswith("_") and not same:
                problems.append(f"{where}: {name} imports the private name {imported} of {target}")
    # cycles, counting imports inside functions
    state = {}

    def visit(n, stack):
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            if m not in graph:
                continue
            if state.get(m) == 1:
                problems.append("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
            elif not state.get(m):
                visit(m, stack + [m])
        state[n] = 2

    for n in sorted(graph):
        if not state.get(n):
            visit(n, [n])
    assert not problems, "\n".join(problems)


@needs_source
def test_csrc_layers():
    problems = []
    targets = {}
    for path in glob.glob(os.path.join(CSRC, "**", "*.*"), recursive=True):
        rel = os.path.relpath(path, CSRC)
        text = open(path, encoding="utf-8").read()
        for m in re.finditer(r"^#define (FP_[A-Z0-9_]+)\b", text, re.M):
            targets.setdefault(m.group(1), []).append(rel)
        if re.search(r"#include [<\"](Python\.h|pybind11/)", text) and not rel.startswith("python" + os.sep):
            problems.append(f"{rel} includes Python or pybind11 (only csrc/python/ may)")
        # the SIMD level in a function signature, outside the dispatcher (dispatch.*, arch.h and
        # each architecture's cpu.cpp / table.cpp, which build the tables) and the bindings
        dispatcher = (rel.startswith(("python" + os.sep, os.path.join("kernels", "dispatch"), os.path.join("kernels", "arch")))
                      or os.path.basename(rel) in ("cpu.cpp", "table.cpp") or rel == os.path.join("kernels", "generic", "arch.cpp"))
        if not dispatcher:
            for m in re.finditer(r"\w+\([^;{)]*\bSimd\s+\w+", text):
                problems.append(f"{rel}: a function takes the SIMD level: {m.group(0)[:80]}")
        if re.search(r"#if\s+defined\(__(x86_64|aarch64|i386)__\)", text):
            problems.append(f"{rel}: an architecture #if (only kernels/<arch>/ is compiled per architecture)")
    for macro, files in sorted(targets.items()):
        if len(files) != 1:
            problems.append(f"{macro} is defined {len(files)} times: {files}")
    assert set(targets) >= {"FP_SSE41", "FP_AVX2"}, targets
    assert not problems, "\n".join(problems)


def _note_definitions():
    """{note name: [files that define it]}: a line that starts a Note block (// Note [X], # Note
    [X], or Note [X] at the start of a docstring line)."""
    out = {}
    files = glob.glob(os.path.join(CSRC, "**", "*.*"), recursive=True) + glob.glob(os.path.join(PKG, "**", "*.py"),
                                                                                     recursive=True)
    for path in files:
        for line in open(path, encoding="utf-8"):
            m = re.match(r"\s*(?://|#)?\s*Note \[([^\]]+)\]\s*$", line)
            if m:
                out.setdefault(m.group(1), []).append(os.path.relpath(path, ROOT))
    return out


@needs_source
def test_architecture_notes_index_is_complete_and_true():
    text = open(os.path.join(ROOT, "ARCHITECTURE.md"), encoding="utf-8").read()
    index = text[text.index("## Notes index"):]
    rows = {}
    for line in index.splitlines():
        if line.startswith("| [") :
            cells = [c.strip() for c in line.strip("|").split("|")]
            for name in re.findall(r"\[([^\]]+)\]", cells[0]):
                rows[name] = cells[1]
    defined = _note_definitions()
    missing = sorted(set(defined) - set(rows))
    assert not missing, f"Notes missing from ARCHITECTURE.md's index: {missing}"
    wrong = {n: (rows[n], files) for n, files in defined.items() if rows[n] not in files}
    assert not wrong, f"ARCHITECTURE.md's index names the wrong file: {wrong}"
    stale = sorted(set(rows) - set(defined))
    assert not stale, f"ARCHITECTURE.md's index lists Notes no file defines: {stale}"


@needs_source
def test_every_source_path_named_in_code_and_docs_exists():
    """Comments, docstrings and docs that point at a csrc/ or fastprep/ file point at one that exists
    (the layout moved every file once; a stale path sends a reader nowhere)."""
    named = re.compile(r"\b((?:csrc|fastprep)/[A-Za-z0-9_/]+\.(?:h|cpp|cc|py|pyi))\b")
    texts = glob.glob(os.path.join(PKG, "**", "*.py*"), recursive=True)
    texts += glob.glob(os.path.join(CSRC, "**", "*.[ch]*"), recursive=True)
    texts += glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
    texts += [os.path.join(ROOT, n) for n in ("README.md", "ARCHITECTURE.md")]
    stale = []
    for path in texts:
        if not os.path.isfile(path) or path.endswith(".so"):
            continue
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                for m in named.finditer(line):
                    if not os.path.exists(os.path.join(ROOT, m.group(1))):
                        stale.append(f"{os.path.relpath(path, ROOT)}:{lineno}: {m.group(1)}")
    assert not stale, "paths that do not exist:\n" + "\n".join(stale)
