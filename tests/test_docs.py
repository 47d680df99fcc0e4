"""The documents agree with the code: every function docs/gradients.md and the README's gradient
map name exists, and the README's sample of ``npvae gradcheck`` is what the command prints."""

import importlib
import re
from pathlib import Path

import pytest

from npvae.run import cli

ROOT = Path(__file__).resolve().parents[1]
DERIVATION = (ROOT / "docs" / "gradients.md").read_text()
README = (ROOT / "README.md").read_text()


def resolve(module, qualname):
    """The object ``module.qualname`` names (e.g. "npvae.core.vae", "VAE._forward"), or None."""
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


DOC_REFERENCES = sorted(set(re.findall(r"`npvae/([\w/]+)\.py::([\w.]+)`", DERIVATION)))


def test_the_derivation_names_many_functions():
    assert len(DOC_REFERENCES) >= 20
    for step in ("_elbo_loss_and_grads", "_decode_backward", "reparameterize_backward",
                 "kl_standard_normal", "_encode_backward", "_iwae_loss_and_grads",
                 "free_bits_kl", "clamp_backward", "dense_backward", "Adam.step"):
        assert any(name.endswith(step) for _, name in DOC_REFERENCES), step


@pytest.mark.parametrize("path, qualname", DOC_REFERENCES, ids=lambda v: str(v))
def test_every_function_the_derivation_names_exists(path, qualname):
    assert callable(resolve("npvae." + path.replace("/", "."), qualname)), (path, qualname)


def gradient_map_rows():
    """The README gradient map's "computed in" cells, as (module, qualname)."""
    table = README[README.index("## The gradient map"):README.index("## The gradient report")]
    rows = [line.split("|") for line in table.splitlines() if line.startswith("| ")]
    names = [re.findall(r"`([\w.*]+)`", row[-2]) for row in rows[1:]]
    return [name for cell in names for name in cell]


def test_every_function_the_gradient_map_names_exists():
    names = gradient_map_rows()
    assert len(names) >= 12
    for name in names:
        if name.startswith("layers.*"):  # the activations, one backward each
            assert resolve("npvae.core.layers", "relu_backward")
            continue
        module, qualname = name.split(".", 1)
        if module[0].isupper():  # VAE.…: a method of the model
            module, qualname = "vae", name
        assert callable(resolve(f"npvae.core.{module}", qualname)), name


def normalized(line):
    """A report line with its relative errors masked (they are rounding noise, which differs
    between CPUs) and its other numbers to 6 significant digits."""
    line = re.sub(r"\d\.\d\de[-+]\d\d", "E", line)
    return re.sub(r"-?\d+\.\d+", lambda m: f"{float(m.group()):.6g}", line)


def test_the_readme_sample_of_gradcheck_is_what_it_prints(capsys):
    sample = README[README.index("$ npvae gradcheck"):]
    sample = sample[:sample.index("```")].splitlines()[1:]
    assert cli.main(["gradcheck"]) == 0
    printed = {normalized(line) for line in capsys.readouterr().out.splitlines()}
    missing = [line for line in sample if line not in ("...", "")
               and normalized(line) not in printed]
    assert not missing, missing
