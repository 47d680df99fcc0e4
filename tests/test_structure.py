"""Fitness checks of the package's shape, so that it cannot silently grow back:

- the reader's path through the default VAE's loss stays short (issue 21's targets: at most
  18 npvae functions, 4 frames deep counting the entry, 4 files, 8 decisions outside the
  input checks);
- the folders are layers: core < models < study < verify < run, and no module imports from a
  layer above its own, not even inside a function; the math core imports only NumPy and the
  standard library;
- no function is longer than 80 lines.
"""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import npvae

PACKAGE = Path(npvae.__file__).resolve().parent
LAYERS = ["core", "models", "study", "verify", "run"]


def reading_path():
    """Trace one loss_and_grads of the default model (Bernoulli, one hidden ReLU layer on each
    side, K = 1, eps given): the npvae functions entered, the deepest chain of npvae frames,
    the files, and the decision lines (if, while, conditional expressions, and/or)
    executed outside the input checks (core/checks.py)."""
    rng = np.random.default_rng(0)
    model = npvae.VAE(12, (6,), 3, dtype=np.float64, seed=1)
    x = (rng.random((4, 12)) < 0.5).astype(np.float64)
    eps = rng.standard_normal((4, 3))
    functions, lines, depth, deepest = set(), set(), [0], [0]

    def profile(frame, event, arg):
        if not frame.f_code.co_filename.startswith(str(PACKAGE)):
            return
        if event == "call":
            depth[0] += 1
            deepest[0] = max(deepest[0], depth[0])
            functions.add((frame.f_code.co_filename, frame.f_code.co_firstlineno))
        elif event == "return":
            depth[0] -= 1

    def trace(frame, event, arg):
        if frame.f_code.co_filename.startswith(str(PACKAGE)):
            if event == "line":
                lines.add((frame.f_code.co_filename, frame.f_lineno))
            return trace
        return None

    sys.setprofile(profile)
    sys.settrace(trace)
    try:
        model.loss_and_grads(x, eps=eps)
    finally:
        sys.setprofile(None)
        sys.settrace(None)
    files = {f for f, _ in functions}
    decisions = set()
    for f in files:
        if Path(f).name == "checks.py":
            continue
        for node in ast.walk(ast.parse(Path(f).read_text())):
            if isinstance(node, (ast.If, ast.IfExp, ast.BoolOp, ast.While)):
                decisions.add((f, node.lineno))
            elif isinstance(node, ast.comprehension) and node.ifs:
                decisions.add((f, node.ifs[0].lineno))
    return len(functions), deepest[0], len(files), len(decisions & lines)


def test_the_default_loss_reads_in_one_sitting():
    functions, depth, files, decisions = reading_path()
    assert functions <= 18, f"{functions} functions on the default loss's path"
    assert depth <= 4, f"{depth} frames deep"
    assert files <= 4, f"{files} files"
    assert decisions <= 8, f"{decisions} decisions"


def imports(path):
    """(module named, line) for every import in a file, module-level and in functions, as
    absolute names (relative imports resolved against the file's package)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.append((module, node.lineno))
            found += [(f"{module}.{alias.name}", node.lineno) for alias in node.names]
    return found


def layer_of(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "npvae" and parts[1] in LAYERS else None


def test_the_folders_are_layers_and_imports_point_down():
    stdlib = sys.stdlib_module_names
    upward = []
    for layer in LAYERS:
        for path in sorted((PACKAGE / layer).glob("*.py")):
            for module, line in imports(path):
                other = layer_of(module)
                if other is not None and LAYERS.index(other) > LAYERS.index(layer):
                    upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
                if layer == "core" and module.split(".")[0] not in stdlib | {"numpy", "npvae"}:
                    upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
                if layer == "core" and module.startswith("npvae") and other != "core":
                    upward.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert not upward, upward


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 80 and "parser" not in node.name:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({n})")
    assert not long, long


def test_import_npvae_loads_neither_scipy_nor_matplotlib():
    """Training pays only for NumPy: SciPy cost every run 1.2 s and 66 MB when it was eager."""
    code = ("import sys, npvae; print(sorted({m.split('.')[0] for m in sys.modules} "
            "& {'scipy', 'matplotlib'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_the_scipy_studies_load_on_first_use():
    from npvae.study import ppca, regularity

    assert npvae.ppca is ppca and npvae.regularity is regularity
    assert {"ppca", "regularity"} <= set(dir(npvae)) and set(npvae.__all__) <= set(dir(npvae))
    with pytest.raises(AttributeError, match="no attribute 'ppcaa'"):
        npvae.ppcaa
