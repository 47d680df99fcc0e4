"""Mutation check: does some test fail whenever the math is broken, forward or backward?

    python benchmarks/mutation_check.py              # every mutant (838), 2 workers: 25 min idle
    python benchmarks/mutation_check.py --list       # the mutants, without running them
    python benchmarks/mutation_check.py --only hvae  # the mutants of the files matching "hvae"
    python benchmarks/mutation_check.py --only core/ --only models/   # several groups
    python benchmarks/mutation_check.py --only hvae --match "HVAE.sample"  # some mutants

It makes single-point mutants of the functions named in ``TARGETS``: the forward passes, the
terminal nodes, the samplers, the stability guards, every backward and the optimizers' updates.
The kinds of change (``_changes``):

- arithmetic: + and -, * and /, ** to * swapped; a unary minus dropped; an in-place update
  (``a += b``) deleted; a factor dropped (``a * b`` to ``a`` or ``b``, ``a / b`` to ``a``: a
  removed mask, scale or standard deviation);
- comparisons loosened or tightened (> and >=, < and <=), == to !=, % to //;
- numeric constants changed (c to 2c, 0 to 1: exp(logvar / 2) becomes exp(logvar));
- swapped reductions and guards: max and min (``a.max``/``a.min``, ``np.maximum``/
  ``np.minimum``), the branches of ``np.where`` exchanged, ``np.abs`` or ``np.clip`` dropped
  (the sigmoid's and softplus's branches, the clamps), a guard's re-assignment deleted
  (``a = np.where(...)`` / ``np.clip`` / ``np.maximum`` of itself);
- layout: ``np.broadcast_to(a, (K, ...))`` and ``np.tile(a, (K, 1))`` replaced by
  ``np.repeat(a, K, axis=0)`` (each sample scored against the wrong example);
- and the hand-written ``CUSTOM`` mutants below (the IWAE weights without their max-shift, ...).

For each mutant it runs that file's tests (``TESTS``, fast decisive ones first, ``pytest -x``)
on a copy of the project with that one change, and counts the mutant *killed* if a test fails
(or errors, or times out). Every test run is a fork of one process that has already imported
NumPy, SciPy, pytest and hypothesis, and that imports the mutated npvae afresh: a run costs the
tests, not the interpreter's start. Before the mutants, the unchanged code must pass every
selected test (a failing baseline would count every mutant as killed).

An *equivalent* mutant computes the same numbers as the original for every input the code can
receive, so no test can kill it; each is listed in ``EQUIVALENT`` with the reason. Every other
survivor is a gap in the tests. The score is over the mutants that are not equivalent.

This is a development tool: it runs outside CI's time budget and needs nothing beyond pytest.
"""

import argparse
import ast
import copy
import dataclasses
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# file -> the functions (or Class.method) whose bodies are mutated, in the order they run.
TARGETS = {
    "npvae/models/hvae.py": [
        "HVAE._hierarchy_forward", "HVAE._terms", "HVAE.loss_and_grads",
        "HVAE._hierarchy_backward", "HVAE.log_weights", "HVAE.sample", "HVAE.elbo_terms"],
    "npvae/core/vae.py": [
        "VAE.loss_and_grads", "VAE._nll", "VAE._iwae_loss_and_grads", "VAE._gaussian_forward",
        "VAE._gaussian_backward", "VAE._decode_forward", "VAE._decode_backward", "VAE._forward",
        "VAE._decode_nll", "VAE.decode", "VAE._draw_x", "VAE.sample", "VAE._prior_draws",
        "VAE.log_weights", "VAE.prior_log_weights", "VAE.elbo_terms"],
    "npvae/models/cvae.py": ["CVAE.sample", "one_hot"],
    "npvae/models/autoencoder.py": ["Autoencoder.loss_and_grads", "Autoencoder.encode"],
    "npvae/core/distributions.py": [
        "bernoulli_nll", "gaussian_nll", "gaussian_nll_learned", "kl_standard_normal",
        "kl_per_dimension", "free_bits_kl", "gaussian_log_density",
        "standard_normal_log_density", "reparameterize_forward", "reparameterize_backward",
        "logsumexp", "cholesky_forward", "cholesky_backward", "full_reparameterize_forward",
        "full_reparameterize_backward", "kl_full_standard_normal", "gaussian_full_log_density"],
    "npvae/models/fullcov.py": ["FullCovarianceVAE.loss_and_grads",
                                "FullCovarianceVAE.encode_full",
                                "FullCovarianceVAE._full_forward",
                                "FullCovarianceVAE.log_weights",
                                "FullCovarianceVAE.elbo_terms"],
    "npvae/models/classifier.py": ["log_softmax", "categorical_nll", "Classifier.loss_and_grads",
                                   "Classifier.log_proba"],
    "npvae/models/m2.py": ["SemiSupervisedVAE.loss_and_grads", "SemiSupervisedVAE.log_proba"],
    "npvae/core/layers.py": [
        "dense_forward", "dense_backward", "mlp_forward", "mlp_backward",
        "identity_backward", "relu_forward", "relu_backward", "leaky_relu_forward",
        "leaky_relu_backward", "tanh_forward", "tanh_backward", "sigmoid", "sigmoid_backward",
        "softplus", "softplus_backward", "clamp_forward", "clamp_backward"],
    "npvae/study/inference.py": ["elbo_of_q_and_grads"],
    "npvae/core/optim.py": ["SGD.step", "Adam.step", "Adam._step_fused", "flush_subnormals"],
}

# file -> the tests run for its mutants, fast and decisive first (pytest -x stops at the first
# failure). A "file::name" entry selects one test.
TESTS = {
    "npvae/core/layers.py": ["tests/test_activations.py", "tests/test_gradients.py",
                             "tests/test_distributions.py",
                             "tests/test_vae.py", "tests/test_fast_paths.py",
                             "tests/test_generation.py"],
    "npvae/core/distributions.py": ["tests/test_distributions.py", "tests/test_gradients.py",
                                    "tests/test_vae.py", "tests/test_iwae.py",
                                    "tests/test_free_bits.py", "tests/test_fast_paths.py",
                                    "tests/test_fullcov.py"],
    "npvae/core/vae.py": ["tests/test_gradients.py", "tests/test_vae.py", "tests/test_iwae.py",
                          "tests/test_generation.py", "tests/test_cvae.py",
                          "tests/test_free_bits.py", "tests/test_fast_paths.py",
                          "tests/test_decoder_variance.py", "tests/test_evaluate.py"],
    "npvae/models/autoencoder.py": ["tests/test_autoencoder.py"],
    "npvae/models/cvae.py": ["tests/test_cvae.py", "tests/test_generation.py"],
    "npvae/models/hvae.py": ["tests/test_hvae.py"],
    "npvae/models/fullcov.py": ["tests/test_fullcov.py"],
    "npvae/models/classifier.py": ["tests/test_classifier.py", "tests/test_semi_supervised.py"],
    "npvae/models/m2.py": ["tests/test_semi_supervised.py"],
    "npvae/core/optim.py": ["tests/test_optim.py", "tests/test_fast_paths.py"],
    "npvae/study/inference.py": [
        "tests/test_inference.py::test_elbo_of_q_and_grads_is_the_vaes_loss_at_the_encoders_q",
        "tests/test_inference.py"],
}

# Hand-written mutants that no single AST change expresses: (file, function, the original
# text (unique in the file), its replacement, what it models).
CUSTOM = [
    ("npvae/core/vae.py", "VAE._iwae_loss_and_grads",
     "w_tilde = np.exp(log_w - log_sum_w)",
     "w_tilde = np.exp(log_w) / np.exp(log_w).sum(axis=0)",
     "the weights' softmax without its max-shift"),
    ("npvae/core/vae.py", "VAE._iwae_loss_and_grads",
     "log_sum_w = logsumexp(log_w, axis=0)",
     "log_sum_w = np.log(np.exp(log_w).sum(axis=0))",
     "the bound's log-sum without its max-shift"),
    ("npvae/core/distributions.py", "logsumexp",
     "np.log(np.exp(a - a_max).sum(axis=axis)) + np.squeeze(a_max, axis=axis)",
     "np.log(np.exp(a).sum(axis=axis))",
     "no shift at all"),
    ("npvae/core/distributions.py", "logsumexp",
     '    with np.errstate(divide="ignore"):',
     "    if True:",
     "the warning guard of log 0 removed"),
    ("npvae/core/distributions.py", "bernoulli_nll",
     "(np.maximum(logits, 0) - x * logits + (e - (u - 1))).sum(axis=-1) + sum_log_u",
     "(np.log1p(np.exp(logits)) - x * logits).sum(axis=-1)",
     "the naive softplus, which overflows for large logits"),
    ("npvae/core/distributions.py", "bernoulli_nll",
     "(np.maximum(logits, 0) - x * logits + (e - (u - 1))).sum(axis=-1) + sum_log_u",
     "(np.maximum(logits, 0) - x * logits).sum(axis=-1) + sum_log_u",
     "log1p(e) without δ, what rounding 1 + e lost"),
    ("npvae/core/distributions.py", "bernoulli_nll",
     "prod_u = np.multiply.reduceat(u, blocks, axis=-1, dtype=np.float64)",
     "prod_u = np.multiply.reduceat(u, blocks, axis=-1)",
     "the products formed in u's dtype, which overflows float32 beyond 128 pixels"),
    ("npvae/core/layers.py", "softplus",
     "np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))",
     "np.log1p(np.exp(x))",
     "the naive softplus"),
    ("npvae/core/layers.py", "sigmoid",
     "np.where(x >= 0, 1, e) / (1 + e)",
     "1 / (1 + np.exp(-x))",
     "the naive sigmoid (overflow warnings below -88 in float32)"),
]

# (file, function, original line, column, what changed) -> why the mutant computes the same
# numbers as the original for every input the code receives.
EQUIVALENT = {
    ("npvae/core/distributions.py", "bernoulli_nll",
     "return nll, (np.maximum(e, logits >= 0) / u - x if need_grad else None)", 31,
     ">= -> >"):
        "at logits = 0, e = exp(0) = 1, so max(e, ·) is 1 on either branch: sigmoid(0)",
    ("npvae/core/distributions.py", "bernoulli_nll",
     "np.copyto(e, 0, where=e < np.finfo(e.dtype).smallest_normal)", 26, "< -> <="):
        "differs only where e equals the smallest normal float exactly (|logits| = 87.3 to "
        "the last bit in float32), by 1.2e-38 in one pixel's softplus and sigmoid: far below "
        "the float resolution of the loss (≥ 87.3 there) and of any test",
    ("npvae/core/distributions.py", "free_bits_kl",
     "return float(np.maximum(kl_dim, floor).sum()), kl_dim > floor", 51, "> -> >="):
        "differs only where a dimension's KL equals the floor exactly, where max(λ, KL) has a "
        "kink and both one-sided derivatives (0 and 1) are valid subgradients",
    ("npvae/core/distributions.py", "logsumexp",
     "a_max = np.where(np.isfinite(a_max), a_max, 0)", 48, "0 -> 1"):
        "the shift used where the max is ±inf: any finite shift gives log(0) - c = -inf for an "
        "all -inf slice and log(inf) + c = inf for a +inf one, the same values",
    ("npvae/models/classifier.py", "Classifier.loss_and_grads",
     "dlogits, logits_cache, need_dx=self._depth > 0)", 43, "> -> >="):
        "need_dx only saves work: with no hidden layer (depth 0) the mutant also computes "
        "dh = dlogits Wᵀ, which mlp_backward over zero layers never reads; every gradient is "
        "the same",
    ("npvae/models/m2.py", "SemiSupervisedVAE.loss_and_grads",
     "dlogits, logits_cache, need_dx=self._classifier_depth > 0)", 43, "> -> >="):
        "the same as the classifier's: with a linear classifier the extra dh is never read",
    ("npvae/core/distributions.py", "cholesky_backward", "Z = diag.shape[-1]", 19,
     "unary - dropped"):
        "diag is (B, Z), as the function's contract and its only caller give it: axis 1 is "
        "axis -1",
    ("npvae/core/distributions.py", "kl_full_standard_normal", "Z = mu.shape[-1]", 17,
     "unary - dropped"):
        "mu is (B, Z) by the function's contract: axis 1 is axis -1",
    ("npvae/core/distributions.py", "kl_full_standard_normal",
     "- 2 * np.log(diag).sum(axis=-1))", 44, "unary - dropped"):
        "diag is (B, Z) by the function's contract (L is (B, Z, Z)): axis 1 is axis -1",
    ("npvae/core/distributions.py", "kl_full_standard_normal",
     "kl = 0.5 * ((L * L).sum(axis=(-2, -1)) + (mu * mu).sum(axis=-1) - Z", 64,
     "unary - dropped"):
        "mu is (B, Z) by the function's contract: axis 1 is axis -1",
    ("npvae/core/layers.py", "leaky_relu_forward", "mask = x > 0", 11, "> -> >="):
        "differs only at x = 0 exactly, where y = 0 on either branch and the kink's one-sided "
        "derivatives (0.01 and 1) are both valid subgradients",
    ("npvae/core/layers.py", "sigmoid", "return np.where(x >= 0, 1, e) / (1 + e)", 20,
     ">= -> >"):
        "at x = 0, e = exp(0) = 1, so where(·, 1, e) is 1 on either branch: sigmoid(0) = 1/2",
    ("npvae/core/layers.py", "clamp_forward", "inside = (x >= lo) & (x <= hi)", 14, ">= -> >"):
        "differs only where x equals the bound exactly, a kink of the clamp where both "
        "one-sided derivatives (0 and 1) are valid subgradients",
    ("npvae/core/layers.py", "clamp_forward", "inside = (x >= lo) & (x <= hi)", 26, "<= -> <"):
        "the same at the upper bound",
    ("npvae/core/vae.py", "VAE._draw_x",
     "return (rng.random(mean.shape, dtype=self.dtype) < mean).astype(self.dtype)", 20,
     "< -> <="):
        "u ≤ p and u < p differ only when the uniform draw u equals the probability p exactly "
        "(probability 2^-24 per pixel in float32, 2^-53 in float64): the same Bernoulli(p)",
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
         ast.Pow: ast.Mult, ast.Mod: ast.FloorDiv, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
         ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Eq: ast.NotEq}
SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.Mod: "%",
           ast.FloorDiv: "//", ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<=",
           ast.Eq: "==", ast.NotEq: "!="}
OPPOSITES = {"max": "min", "min": "max", "maximum": "minimum", "minimum": "maximum"}
GUARDS = ("where", "clip", "maximum", "minimum")  # a = np.<guard>(...) re-assigned: deletable


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


def _np_call(node, *names):
    """The name of the NumPy function ``node`` calls (np.<name>(...)), if one of ``names``."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "np"
            and node.func.attr in names):
        return node.func.attr
    return None


def _np(name, *args, **keywords):
    """The AST of np.<name>(*args, **keywords)."""
    return ast.Call(ast.Attribute(ast.Name("np", ast.Load()), name, ast.Load()), list(args),
                    [ast.keyword(k, v) for k, v in keywords.items()])


def _changes(node):
    """The mutations of one AST node: (description, function). The function changes the node
    in place and returns None, or returns the node that replaces it."""
    changes = []
    op = getattr(node, "op", None)
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(op) in SWAPS:
        new = SWAPS[type(op)]
        changes.append((f"{SYMBOLS[type(op)]} -> {SYMBOLS[new]}",
                        lambda n, new=new: setattr(n, "op", new())))
    if isinstance(node, ast.BinOp) and isinstance(op, (ast.Mult, ast.Div)):
        changes.append((f"{SYMBOLS[type(op)]} {ast.unparse(node.right)} dropped",
                        lambda n: n.left))
    if isinstance(node, ast.BinOp) and isinstance(op, ast.Mult):
        changes.append((f"{ast.unparse(node.left)} * dropped", lambda n: n.right))
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
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in OPPOSITES):  # a.max(...) or np.maximum(...)
        new = OPPOSITES[node.func.attr]
        changes.append((f"{node.func.attr} -> {new}",
                        lambda n, new=new: setattr(n.func, "attr", new)))
    if _np_call(node, "where") and len(node.args) == 3:
        changes.append(("np.where branches swapped",
                        lambda n: setattr(n, "args", [n.args[0], n.args[2], n.args[1]])))
    if _np_call(node, "abs", "clip") and node.args:
        changes.append((f"np.{node.func.attr} dropped", lambda n: n.args[0]))
    if (_np_call(node, "broadcast_to") and len(node.args) == 2
            and isinstance(node.args[1], ast.Tuple) and node.args[1].elts
            and not isinstance(node.args[1].elts[0], ast.Starred)):
        changes.append(("broadcast_to -> repeat", lambda n: _np(
            "repeat", n.args[0], n.args[1].elts[0], axis=ast.Constant(0))))
    if (_np_call(node, "tile") and len(node.args) == 2 and isinstance(node.args[1], ast.Tuple)
            and len(node.args[1].elts) == 2):
        changes.append(("tile -> repeat", lambda n: _np(
            "repeat", n.args[0], n.args[1].elts[0], axis=ast.Constant(0))))
    return changes


def _guard(stmt, bound):
    """True for ``a = np.where/clip/maximum/minimum(...)`` re-assigning a name already bound:
    a guard whose deletion leaves the code runnable."""
    return (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name) and stmt.targets[0].id in bound
            and _np_call(stmt.value, *GUARDS) is not None)


def _body_nodes(func):
    """The nodes of a function's body in ``ast.walk`` order, docstrings left out."""
    return [n for stmt in func.body for n in ast.walk(stmt)
            if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))]


def mutants(file):
    """Every single-point mutant of the target functions of ``file``, and its CUSTOM ones."""
    source = (ROOT / file).read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    found = []
    # reshape(-1, ...) to reshape(-2, ...) is not made: NumPy reads any negative size as
    # "infer this one", so that mutant is equivalent by construction.
    infer = {id(arg.operand) for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute) and n.func.attr == "reshape"
             for arg in n.args if isinstance(arg, ast.UnaryOp) and isinstance(arg.op, ast.USub)}
    for qualname, func in _functions(tree, TARGETS[file]):
        bound = {a.arg for a in func.args.args}
        for index, node in enumerate(_body_nodes(func)):
            if id(node) in infer:
                continue
            if isinstance(node, ast.Assign):
                if _guard(node, bound):
                    found.append(_deleted(tree, node, Mutant(
                        file, qualname, node.lineno, node.col_offset,
                        lines[node.lineno - 1].split("#")[0].strip(), "guard deleted", "")))
                bound |= {t.id for t in node.targets if isinstance(t, ast.Name)}
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
    for c_file, function, old, new, what in CUSTOM:
        if c_file != file:
            continue
        if source.count(old) != 1:
            raise SystemExit(f"CUSTOM mutant of {file} {function}: {old!r} occurs "
                             f"{source.count(old)} times; update CUSTOM.")
        line = source[:source.index(old)].count("\n") + 1
        found.append(Mutant(file, function, line, 0, old.strip(), what,
                            source.replace(old, new)))
    return found


def _mutant(tree, func, index, apply, mutant):
    """``mutant`` with its source: the tree with the change applied to the index-th node of
    the function's body (in ``ast.walk`` order)."""
    tree = copy.deepcopy(tree)
    func_copy = next(n for n in ast.walk(tree)
                     if isinstance(n, ast.FunctionDef) and n.lineno == func.lineno)
    target = _body_nodes(func_copy)[index]
    replacement = apply(target)
    if replacement is not None:
        _replace(tree, target, replacement)
    return dataclasses.replace(mutant, source=ast.unparse(ast.fix_missing_locations(tree)))


def _replace(tree, old, new):
    """Put ``new`` where ``old`` is in ``tree``."""
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list) and any(v is old for v in value):
                value[next(i for i, v in enumerate(value) if v is old)] = new
                return
    raise ValueError("node not found")


def _deleted(tree, node, mutant):
    """``mutant`` with its source: the tree with the statement ``node`` replaced by pass."""
    tree = copy.deepcopy(tree)
    for parent in ast.walk(tree):
        for field in ("body", "orelse"):
            stmts = getattr(parent, field, None)
            if isinstance(stmts, list):
                for i, stmt in enumerate(stmts):
                    if (type(stmt) is type(node) and stmt.lineno == node.lineno
                            and stmt.col_offset == node.col_offset):
                        stmts[i] = ast.Pass()
    return dataclasses.replace(mutant, source=ast.unparse(tree))


# ----------------------------------------------------------------------------- running

def _preload():
    """Import what the tests import, except npvae, so that every forked run starts warm."""
    os.environ["MPLBACKEND"] = "Agg"
    import hypothesis  # noqa: F401
    import matplotlib  # noqa: F401
    import matplotlib.pyplot  # noqa: F401
    import numpy  # noqa: F401
    import pytest  # noqa: F401
    import scipy.linalg  # noqa: F401
    import scipy.optimize  # noqa: F401
    import scipy.special  # noqa: F401
    import scipy.stats  # noqa: F401


def _start(tests, workdir, log):
    """Fork one run of ``tests`` in ``workdir`` (whose npvae holds the mutant); its pid."""
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: import the mutated npvae afresh and run the tests
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1), os.dup2(fd, 2)
        os.setpgrp()
        os.chdir(workdir)
        sys.path.insert(0, str(workdir))
        import warnings
        warnings.simplefilter("ignore", RuntimeWarning)
        import pytest
        code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-W",
                            "ignore::RuntimeWarning", *tests])
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(int(code))
    except BaseException:  # noqa: BLE001 (anything the child raises is a failed run)
        import traceback
        traceback.print_exc()
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(99)


def _run_all(jobs, dirs, timeout, report):
    """Run every (key, file, source, tests) job in a free working copy: {key: (killed, s)}.

    ``source`` replaces ``file`` in the copy for that run (None for the unchanged code)."""
    free, running, results = list(dirs), {}, {}
    queue = list(jobs)
    while queue or running:
        while queue and free:
            key, file, source, tests = queue.pop(0)
            workdir = free.pop()
            if source is not None:
                (workdir / file).write_text(source)
            pid = _start(tests, workdir, workdir / "run.log")
            running[pid] = (key, file, source, workdir, time.perf_counter())
        time.sleep(0.05)
        for pid, (key, file, source, workdir, t0) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            elapsed = time.perf_counter() - t0
            if not done and elapsed < timeout:
                continue
            if not done:  # too slow: stop its process group, and count the mutant as killed
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = None
            del running[pid]
            failed = status is None or os.waitstatus_to_exitcode(status) != 0
            results[key] = (failed, elapsed, (workdir / "run.log").read_text())
            if source is not None:
                (workdir / file).write_text((ROOT / file).read_text())
            free.append(workdir)
            report(key, failed, elapsed)
    return results


def _copy_project(into):
    for name in ("npvae", "tests", "docs", "demos", "benchmarks", "README.md", "setup.cfg",
                 "pyproject.toml"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.exists():
            shutil.copy(source, into / name)
    return into


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append",
                   help="mutate only the files whose path contains this (repeatable)")
    p.add_argument("--match", action="append",
                   help="only the mutants whose description contains this (repeatable)")
    p.add_argument("--list", action="store_true", help="list the mutants and stop")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--timeout", type=float, default=600, help="seconds per mutant's tests")
    args = p.parse_args(argv)
    files = [f for f in TARGETS if args.only is None or any(o in f for o in args.only)]
    todo = [m for f in files for m in mutants(f)]
    stale = [k for k in EQUIVALENT if k[0] in files and k not in {m.key for m in todo}]
    if args.match:
        todo = [m for m in todo if any(text in str(m) for text in args.match)]
    if args.list:
        print("\n".join(map(str, todo)))
        print(f"{len(todo)} mutants")
        for key in stale:
            print(f"stale EQUIVALENT entry (no such mutant now): {key}")
        return 0
    sys.dont_write_bytecode = True  # the working copies' files change under the same names
    _preload()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [_copy_project(Path(tmp) / f"w{i}") for i in range(args.workers)]
        baseline = _run_all([(f, f, None, TESTS[f]) for f in files], dirs, args.timeout,
                            lambda key, failed, s: print(
                                f"baseline {'FAILED' if failed else 'passed'} {key} ({s:.0f} s)",
                                flush=True))
        broken = [f for f in files if baseline[f][0]]
        for f in broken:
            print(f"\nthe unchanged code fails {f}'s tests:\n{baseline[f][2][-3000:]}")
        if broken:
            return 2
        by_key = {m.key: m for m in todo}
        results = _run_all([(m.key, m.file, m.source, TESTS[m.file]) for m in todo], dirs,
                           args.timeout,
                           lambda key, failed, s: print(
                               f"{'killed  ' if failed else 'SURVIVED'} {by_key[key]} "
                               f"({s:.0f} s)", flush=True))
    for key in stale:
        print(f"stale EQUIVALENT entry (no such mutant now): {key}")
    return _report(todo, {k: r[0] for k, r in results.items()}, time.perf_counter() - start)


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
