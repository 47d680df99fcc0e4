"""Every command the README and the docs pages show runs, offline, as a newcomer would type it
(issue 24.1): so that a README command can never break silently.

Each page's ``python demos/…`` and ``npvae …`` commands (in its shell blocks and in its inline
code) run in order, in one fresh folder per page, as a newcomer would run them one after the
other. Each gets a tiny budget appended (later flags win in argparse): one epoch, a few hundred
examples, a small hidden layer, a few importance samples; ``QUICK`` lists it per demo. Nothing
else is changed: the data come from where a newcomer's would. HOME and the cache are empty
folders and the download mirrors refuse connections; the data sets are a few hundred fake
images in $NPVAE_DATA_DIR, so that each command takes a second or two. (A newcomer without
them gets MNIST from the test split bundled with npvae: ``test_demos`` and ``test_newcomer``
run that path.) The demos run in-process (``runpy``, as ``python demos/x.py`` would), the
commands through ``npvae.run.cli.main``.
"""

import re
import runpy
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from npvae.run import cli, data
from test_cli import closed_port_url  # tests/ is on sys.path
from test_data import write_idx
from test_demos import fake_images

ROOT = Path(__file__).resolve().parents[1]
DEMOS = ROOT / "demos"
PAGES = ["README.md", "docs/story.md", "docs/results.md", "docs/usage.md"]

SMALL = ["--epochs", "1", "--n-train", "300", "--n-test", "100", "--hidden", "16"]
# The tiny budget of each demo, appended to the command as written.
QUICK = {
    "mnist": SMALL + ["--k", "2", "--n-ll", "20"],
    "latent2d": SMALL,
    "interpolate": SMALL + ["--pairs", "2", "--steps", "3"],
    "latent_spaces": SMALL,
    "beta_tradeoff": SMALL + ["--betas", "0.5", "4"],
    "linear_vae_pca": ["--epochs", "4", "--n", "200", "--n-train", "300", "--n-test", "100"],
    "linear_autoencoder": ["--epochs", "4", "--n", "200"],
    "overfit_autoencoder": SMALL + ["--n-train", "40", "--n-test", "20"],
    "regularity": SMALL + ["--collapse-steps", "5"],
    "decoder_variance": SMALL + ["--sigmas", "0.1", "0.3"],
    "inference": SMALL + ["--steps", "5", "--n-gap", "10"],
    "estimators": SMALL + ["--ks", "1", "5", "--repeats", "1", "--n-images", "5"],
    "classifier": SMALL + ["--k", "2", "--n-classify", "20"],
    "hierarchy": SMALL + ["--seconds", "0.5", "--k", "2", "--n-ll", "20"],
    "cvae": SMALL,
    "iwae_vs_vae": SMALL + ["--k", "2", "--k-eval", "2", "--n-ll", "20"],
    "active_units_beta": SMALL + ["--betas", "1", "4"],
    "vae_vs_pca": SMALL,
    "inference_gaps": SMALL + ["--seeds", "0", "--n-examples", "4", "--steps", "5", "--k-elbo",
                               "10", "--k-log-px", "10", "--models", "diag"],
    "toy_density": ["--n", "200", "--n-heldout", "100", "--epochs", "2", "--seeds", "0",
                    "--k", "5", "--grid", "8", "--hidden", "16"],
    "pca_vs_vae_samples": SMALL + ["--seeds", "0", "--n-samples", "20"],
    "autoencoders": ["--epochs", "1", "--n-train", "300", "--n-test", "100", "--seeds", "0",
                     "--codes", "4", "64", "--width", "16", "--n-eval", "50"],
    "subproblems": SMALL + ["--seeds", "0", "--steps", "3", "--k", "2", "--n-eval", "20",
                            "--batches", "8", "64"],
}
NPVAE_QUICK = {
    "train": ["--epochs", "1", "--hidden", "16", "--val", "100", "--eval-k", "2", "--quiet"],
    "evaluate": ["--k", "2", "--n", "50"],
}
# Placeholders the text uses in a command, and what stands in for them here.
PLACEHOLDERS = {"RUN": "runs/mnist", "DIR": "runs/mnist", "FILE": "mine.npz", "BUG": "kl-half",
                "COMMAND": "train"}


def commands(text):
    """The commands of a page, in order: each a list of words. In a shell block every line
    (and each part of an ``&&`` chain) counts; in the prose, inline code that starts like a
    command, except ``npvae train``, ``npvae evaluate``, … alone, which name a command."""
    found = []
    parts = re.split(r"```[a-z]*\n(.*?)```", text, flags=re.S)  # prose, block, prose, …
    for i, part in enumerate(parts):
        if i % 2:  # a block
            lines = part.replace("\\\n", " ").splitlines()
            pieces = [piece for line in lines for piece in line.split("&&")]
        else:
            pieces = re.findall(r"`([^`]+)`", part)
        for piece in pieces:
            piece = " ".join(piece.split("  #")[0].split())  # drop a trailing comment
            if not piece.startswith(("python demos/", "npvae ")) or re.search("[<…]", piece):
                continue
            words = [PLACEHOLDERS.get(w, w) for w in shlex.split(piece)]
            if not i % 2 and words[0] == "npvae" and len(words) == 2 and words[1] != "gradcheck":
                continue  # a mention of the command, not a command
            if words not in found:  # a command shown twice runs once
                found.append(words)
    return found


def test_the_pages_show_many_commands_and_all_can_be_made_quick():
    readme = commands((ROOT / "README.md").read_text())
    assert ["python", "demos/mnist.py"] in readme  # the quick start
    assert ["npvae", "gradcheck"] in readme
    assert len(readme) >= 15
    for page in PAGES:
        for words in commands((ROOT / page).read_text()):
            assert not any(re.fullmatch("[A-Z]{2,}", w) for w in words), (page, words)
            if words[0] == "python":
                name = Path(words[1]).stem
                assert (DEMOS / f"{name}.py").is_file(), (page, words)
                assert name in QUICK, f"add a tiny budget for demos/{name}.py to QUICK"


@pytest.fixture
def newcomer(tmp_path, monkeypatch):
    """An empty HOME and cache, no network, MNIST and Fashion-MNIST as a few hundred fake
    images in $NPVAE_DATA_DIR, and a folder to work in with a small file of one's own data."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in data.DATASETS:
        for prefix, n, seed in [("train", 300, 0), ("t10k", 100, 1)]:
            images, labels = fake_images(n, seed)
            write_idx(tmp_path / "data" / name / f"{prefix}-images-idx3-ubyte.gz", images)
            write_idx(tmp_path / "data" / name / f"{prefix}-labels-idx1-ubyte.gz", labels)
    monkeypatch.setenv("NPVAE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(data, "SYSTEM_DATA_DIRS", ())
    monkeypatch.setattr(data, "MIRRORS", {name: [closed_port_url()] for name in data.DATASETS})
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    np.savez(work / "mine.npz", x=np.random.default_rng(0).uniform(size=(200, 8, 8)))
    monkeypatch.syspath_prepend(str(DEMOS))  # as `python demos/x.py` puts demos/ first
    return work


def run(words, monkeypatch):
    """Run one command with its tiny budget; return its exit code."""
    if words[0] == "npvae":
        extra = NPVAE_QUICK.get(words[1], [])
        if "--resume" in words:
            extra = ["--epochs", "2"]  # one more epoch than the run it resumes
        elif words[1] == "train":
            extra = extra + ["--overwrite"]  # the page may train into runs/mnist twice
        try:
            return cli.main(words[1:] + extra)
        except SystemExit as stop:  # --help, --version
            return stop.code or 0
    path = ROOT / words[1]
    monkeypatch.setattr(sys, "argv", [str(path), *words[2:], *QUICK[path.stem]])
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as stop:
        return stop.code or 0
    return 0


def test_every_command_of_every_page_runs_offline(newcomer, monkeypatch, capsys):
    """The pages in order, in one folder (a later page may use what an earlier one made, as a
    reader who read them in order would have it): every command of the README, and of the
    docs pages each demo and each npvae command not run before, with the flags first shown
    (so that the suite stays within its few minutes; every demo's own flags are tested in
    tests/test_demos*.py)."""
    done, ran, failed = [], set(), []
    for page in PAGES:
        for words in commands((ROOT / page).read_text()):
            script = tuple(words[:2])
            if words in done or (page != "README.md" and script in ran):
                continue
            done.append(words)
            ran.add(script)
            try:
                code = run(words, monkeypatch)
            except Exception as exc:  # noqa: BLE001  (a demo's crash is a failed command)
                code = repr(exc)
            err = capsys.readouterr().err
            if code != 0:
                failed.append((page, shlex.join(words), code, err.strip().splitlines()[-1:]))
    assert len(done) >= 25
    assert not failed, failed


def anchors(path):
    """The anchors GitHub gives the headings of a Markdown file."""
    heads = re.findall(r"(?m)^#+ (.+)$", path.read_text())
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("page", ["README.md", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))])
def test_every_link_of_the_page_leads_somewhere(page):
    path = ROOT / page
    broken = []
    for link in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if link.startswith(("http://", "https://")):
            continue
        target, _, anchor = link.partition("#")
        target = (path.parent / target).resolve() if target else path
        if not target.exists() or (anchor and target.suffix == ".md"
                                   and anchor not in anchors(target)):
            broken.append(link)
    assert not broken, broken
    assert "../shared" not in path.read_text()  # no machine-specific path
