"""Mutation check: is every hand-written derivative guarded by a test that fails when it breaks?

    python benchmarks/mutation_check.py              # every mutant, 2 workers (~10 minutes)
    python benchmarks/mutation_check.py --list       # the mutants, without running them
    python benchmarks/mutation_check.py --only optim # the mutants of one file

It makes single-point mutants of the backward and optimizer code: in every function that
computes a gradient or an update (below, ``TARGETS``), each arithmetic operator is swapped
(+ and -, * and /, ** to *), each unary minus dropped, each in-place update (``a += b``) deleted,
each comparison loosened or tightened (> and >=, < and <=) and each numeric constant changed
(c to 2c, 0 to 1). For each mutant it runs the gradient tests (``TESTS``) on a copy of the
package with that one change, and counts the mutant *killed* if a test fails (or errors, or
times out). It prints the mutation score over the mutants that are not equivalent, and every
survivor.

An *equivalent* mutant computes the same numbers as the original for every input the code can
receive, so no test can kill it; each is listed in ``EQUIVALENT`` with the reason. Every other
survivor is a gap in the tests.

This is a development tool: it runs outside CI's time budget and needs nothing beyond pytest.
"""

import argparse
import ast
import concurrent.futures
import copy
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# file -> the functions (or Class.method) whose bodies are mutated: every backward, every
# terminal node that returns a gradient, the model's backward, the optimizers' updates.
TARGETS = {
    "npvae/core/layers.py": ["dense_backward", "identity_backward", "relu_backward",
                        "leaky_relu_backward", "tanh_backward", "sigmoid_backward",
                        "softplus_backward", "clamp_backward"],
    "npvae/core/distributions.py": ["bernoulli_nll", "bernoulli_nll_fused", "gaussian_nll",
                               "gaussian_nll_learned", "kl_standard_normal", "free_bits_kl",
                               "gaussian_log_density", "standard_normal_log_density",
                               "reparameterize_backward"],
    "npvae/core/vae.py": ["VAE._mlp_backward", "VAE._decode_backward", "VAE._gaussian_backward",
                     "VAE._elbo_loss_and_grads", "VAE._elbo_given_q",
                     "VAE._iwae_loss_and_grads"],
    "npvae/models/autoencoder.py": ["Autoencoder.loss_and_grads"],
    "npvae/models/hvae.py": ["HVAE.loss_and_grads", "HVAE._terms", "HVAE._hierarchy_backward"],
    "npvae/core/optim.py": ["SGD.step", "Adam.step", "Adam._step_fused"],
}

# Fast, decisive tests first: pytest -x stops at the first failure.
TESTS = ["tests/test_gradients.py", "tests/test_autoencoder.py", "tests/test_hvae.py",
         "tests/test_fast_paths.py",
         "tests/test_optim.py",
         "tests/test_cvae.py", "tests/test_iwae.py", "tests/test_free_bits.py",
         "tests/test_vae.py", "tests/test_distributions.py", "tests/test_gradcheck_report.py"]

# (file, function, original line, column, what changed) -> why the mutant computes the same
# numbers as the original for every input the code receives.
EQUIVALENT = {
    ("npvae/core/distributions.py", "bernoulli_nll_fused",
     "probs = np.maximum(e, logits >= 0) / u", 26, ">= -> >"):
        "at logits = 0, e = exp(0) = 1, so max(e, 1) = max(e, 0) = 1: both give sigmoid(0)",
    ("npvae/core/distributions.py", "free_bits_kl",
     "return float(np.maximum(kl_dim, floor).sum()), kl_dim > floor", 51, "> -> >="):
        "differs only where a dimension's KL equals the floor exactly, where max(λ, KL) has a "
        "kink and both one-sided derivatives (0 and 1) are valid subgradients",
    ("npvae/core/vae.py", "VAE._mlp_backward",
     "dh, dense_cache, need_dx=need_dinput or i > 0)", 56, "> -> >="):
        "computes the first layer's ∂L/∂x, which is then discarded: the same gradients, slower",
    ("npvae/core/vae.py", "VAE._elbo_given_q",
     "dheads = [(d * scale).reshape(-1, d.shape[-1]) for d in fwd.dnll_dheads]", 39, "1 -> 2"):
        "reshape(-2, D): NumPy reads any negative size as 'infer this one', like -1",
    ("npvae/core/vae.py", "VAE._iwae_loss_and_grads",
     "dheads = [(d * weight).reshape(-1, d.shape[-1]) for d in fwd.dnll_dheads]", 40,
     "1 -> 2"):
        "reshape(-2, D): NumPy reads any negative size as 'infer this one', like -1",
}


@dataclasses.dataclass
class Mutant:
    file: str
    function: str
    line: int
    col: int
    code: str  # the original line, stripped
    what: str
    source: str  # the whole mutated file

    @property
    def key(self):
        """What identifies a mutant across edits elsewhere in the file: not its line number."""
        return (self.file, self.function, self.code, self.col, self.what)

    def __str__(self):
        return f"{self.file}:{self.line}:{self.col} {self.function}: {self.what}   [{self.code}]"


SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
         ast.Pow: ast.Mult, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Lt: ast.LtE, ast.LtE: ast.Lt}
SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.Gt: ">",
           ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<="}


def _functions(tree, names):
    """(qualified name, node) of each target function in a module's AST."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            found.append((node.name, node))
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                qualname = f"{node.name}.{getattr(item, 'name', '')}"
                if isinstance(item, ast.FunctionDef) and qualname in names:
                    found.append((qualname, item))
    return found


def _changes(node):
    """The mutations of one AST node: (description, function that applies it in place)."""
    changes = []
    op = getattr(node, "op", None)
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(op) in SWAPS:
        new = SWAPS[type(op)]
        changes.append((f"{SYMBOLS[type(op)]} -> {SYMBOLS[new]}",
                        lambda n, new=new: setattr(n, "op", new())))
    if isinstance(node, ast.UnaryOp) and isinstance(op, ast.USub):
        changes.append(("unary - dropped", lambda n: setattr(n, "op", ast.UAdd())))
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in SWAPS:
        old, new = type(node.ops[0]), SWAPS[type(node.ops[0])]
        changes.append((f"{SYMBOLS[old]} -> {SYMBOLS[new]}",
                        lambda n, new=new: n.ops.__setitem__(0, new())))
    if (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool)):
        new = 1 if node.value == 0 else 2 * node.value
        changes.append((f"{node.value!r} -> {new!r}",
                        lambda n, new=new: setattr(n, "value", new)))
    return changes


def mutants(file):
    """Every single-point mutant of the target functions of ``file``."""
    source = (ROOT / file).read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    found = []
    for qualname, func in _functions(tree, TARGETS[file]):
        body_nodes = [n for stmt in func.body for n in ast.walk(stmt)
                      if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))]
        for index, node in enumerate(body_nodes):
            changes = _changes(node)
            if not changes and not isinstance(node, ast.AugAssign):
                continue
            code = lines[node.lineno - 1].split("#")[0].strip()
            for what, apply in changes:
                found.append(_mutant(tree, func, index, apply, Mutant(
                    file, qualname, node.lineno, node.col_offset, code, what, "")))
            if isinstance(node, ast.AugAssign):  # delete the update: a += b  ->  pass
                found.append(_deleted(tree, node, Mutant(
                    file, qualname, node.lineno, node.col_offset, code, "deleted", "")))
    return found


def _mutant(tree, func, index, apply, mutant):
    """``mutant`` with its source: the tree with the change applied to the index-th node of
    the function's body (in ``ast.walk`` order)."""
    tree = copy.deepcopy(tree)
    func_copy = next(n for n in ast.walk(tree)
                     if isinstance(n, ast.FunctionDef) and n.lineno == func.lineno)
    body_nodes = [n for stmt in func_copy.body for n in ast.walk(stmt)
                  if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))]
    apply(body_nodes[index])
    return dataclasses.replace(mutant, source=ast.unparse(tree))


def _deleted(tree, node, mutant):
    """``mutant`` with its source: the tree with the statement ``node`` replaced by pass."""
    tree = copy.deepcopy(tree)
    for parent in ast.walk(tree):
        for field in ("body", "orelse"):
            stmts = getattr(parent, field, None)
            if isinstance(stmts, list):
                for i, stmt in enumerate(stmts):
                    if isinstance(stmt, ast.AugAssign) and stmt.lineno == node.lineno:
                        stmts[i] = ast.Pass()
    return dataclasses.replace(mutant, source=ast.unparse(tree))


def run_mutant(mutant, workdir, timeout):
    """True if the tests kill ``mutant`` (run in ``workdir``, a copy of the project)."""
    target = workdir / mutant.file
    original = target.read_text()
    target.write_text(mutant.source)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
             "-W", "ignore::RuntimeWarning", *TESTS],
            cwd=workdir, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "PYTHONPATH": str(workdir), "MPLBACKEND": "Agg",
                 "PYTHONDONTWRITEBYTECODE": "1"})
        return result.returncode != 0
    except subprocess.TimeoutExpired:
        return True
    finally:
        target.write_text(original)


def _copy_project(into):
    for name in ("npvae", "tests", "docs", "README.md", "setup.cfg"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, into / name)
    return into


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="mutate only the file whose name contains this")
    p.add_argument("--list", action="store_true", help="list the mutants and stop")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--timeout", type=float, default=300, help="seconds per mutant's tests")
    args = p.parse_args(argv)
    files = [f for f in TARGETS if args.only is None or args.only in f]
    todo = [m for f in files for m in mutants(f)]
    if args.list:
        print("\n".join(map(str, todo)))
        print(f"{len(todo)} mutants")
        return 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [_copy_project(Path(tmp) / f"w{i}") for i in range(args.workers)]
        slots = {i: d for i, d in enumerate(dirs)}
        killed = _run_all(todo, slots, args.timeout)
    return _report(todo, killed, time.perf_counter() - start)


def _run_all(todo, slots, timeout):
    """{mutant key: killed?}, the mutants spread over one working copy per worker."""
    free = list(slots.values())
    results = {}
    with concurrent.futures.ThreadPoolExecutor(len(free)) as pool:
        pending = {}
        queue = list(todo)
        while queue or pending:
            while queue and free:
                mutant, workdir = queue.pop(0), free.pop()
                pending[pool.submit(run_mutant, mutant, workdir, timeout)] = (mutant, workdir)
            done, _ = concurrent.futures.wait(pending, return_when="FIRST_COMPLETED")
            for future in done:
                mutant, workdir = pending.pop(future)
                results[mutant.key] = future.result()
                free.append(workdir)
                print(f"{'killed  ' if results[mutant.key] else 'SURVIVED'} {mutant}",
                      flush=True)
    return results


def _report(todo, killed, seconds):
    survivors = [m for m in todo if not killed[m.key]]
    equivalent = [m for m in survivors if m.key in EQUIVALENT]
    live = [m for m in survivors if m.key not in EQUIVALENT]
    counted = len(todo) - len(equivalent)
    score = (counted - len(live)) / counted if counted else 1.0
    print(f"\n{len(todo)} mutants in {seconds:.0f} s: {len(todo) - len(survivors)} killed, "
          f"{len(equivalent)} equivalent (listed in EQUIVALENT), {len(live)} survived.")
    print(f"mutation score: {score:.1%} of the {counted} non-equivalent mutants killed")
    for m in equivalent:
        print(f"  equivalent: {m}  ({EQUIVALENT[m.key]})")
    for m in live:
        print(f"  SURVIVED:   {m}")
    return 0 if not live else 1


if __name__ == "__main__":
    sys.exit(main())
