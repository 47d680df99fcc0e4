"""The graphical-model figure (issue 22.11): drawn by the package, and its algorithm boxes name
only npvae calls that exist, each of which the boxes' text shows."""

import importlib

from PIL import Image

from npvae.run import diagrams


def _resolve(spec):
    module, path = spec.split(":")
    obj = importlib.import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def test_every_call_the_algorithms_name_exists_and_is_shown():
    text = diagrams.ALGORITHM_1 + diagrams.ALGORITHM_2
    assert len(diagrams.ALGORITHM_CALLS) == 5
    for spec in diagrams.ALGORITHM_CALLS:
        assert callable(_resolve(spec)), spec
        assert spec.split(":")[1].split(".", 1)[-1] in text, spec
    for step in ("z ~ p(z) = N(0, I)", "x ~ p_θ(x|z)", "mu + exp(logvar/2) · eps",
                 "KL(q_φ(z|x_b) ‖ N(0, I))"):
        assert step in text, step


def test_the_figure_is_written(tmp_path):
    path = diagrams.main([str(tmp_path / "gm.png")])
    image = Image.open(path)
    assert image.size[0] > 800 and image.size[1] > 350
    assert len(set(image.convert("L").getdata())) > 10  # drawn, not blank
