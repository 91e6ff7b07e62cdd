"""`pipeline inspect`: the numbers and cells printed for a genotype file."""

from __future__ import annotations

import argparse

import pytest

from pipeline.errors import GenotypeError
from pipeline.space.cnn import GENOTYPE_DARTS_V2
from pipeline.space.genotype import save_genotype
from pipeline.stages import inspect


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    inspect.add_arguments(parser)
    return inspect.run(parser.parse_args(argv))


@pytest.fixture
def genotype_file(tmp_path):
    path = tmp_path / "darts_v2.json"
    save_genotype(path, GENOTYPE_DARTS_V2)
    return path


def test_cifar_defaults_print_the_paper_sized_network(genotype_file, capsys):
    assert _run([str(genotype_file), "--dataset", "cifar10"]) == 0
    out = capsys.readouterr().out
    assert "cifar: 20 cells, C=36, 10 classes, input 3x32x32" in out
    assert "params     3.35 M" in out
    assert "mult-adds  528.4 M" in out
    assert "  node 5 <- skip_connect(c_{k-2}) + dil_conv_3x3(node 2)" in out


def test_imagenet_defaults_use_the_mobile_setting(genotype_file, capsys):
    assert _run([str(genotype_file), "--dataset", "imagenet"]) == 0
    out = capsys.readouterr().out
    assert "imagenet: 14 cells, C=48, 1000 classes, input 3x224x224" in out
    assert "params     4.72 M" in out
    assert "mult-adds  529.9 M" in out


def test_layers_and_channels_override_the_defaults(genotype_file, capsys):
    assert _run([str(genotype_file), "--dataset", "digits", "--layers", "5", "--channels", "8"]) == 0
    out = capsys.readouterr().out
    assert "cifar: 5 cells, C=8, 10 classes, input 1x" in out


def test_missing_genotype_is_a_user_error(tmp_path):
    with pytest.raises(GenotypeError, match=r"nope\.json: genotype file not found"):
        _run([str(tmp_path / "nope.json"), "--dataset", "cifar10"])
