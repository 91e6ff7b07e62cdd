"""The derive stage: a finished search's genotype file, and a clear refusal for an unfinished one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.space.cnn import GENOTYPE_DARTS_V2
from pipeline.space.genotype import genotype_to_dict, load_genotype

REPO = Path(__file__).resolve().parent.parent
SEARCH_PROVENANCE = {"stage": "search", "dataset": "digits", "method": "darts_2nd", "seed": 1,
                     "git_commit": "abc123", "params_sha256": "f" * 64, "created_utc": "2025-01-01T00:00:00+00:00"}


@pytest.fixture
def params(tmp_path: Path) -> Path:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["tracking"]["enabled"] = False
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_derive_writes_the_searched_genotype_with_its_provenance(tmp_path: Path, params: Path, capsys) -> None:
    search_dir = tmp_path / "results/search/digits/darts_2nd/seed1"
    search_dir.mkdir(parents=True)
    summary = {"genotype": genotype_to_dict(GENOTYPE_DARTS_V2), "provenance": SEARCH_PROVENANCE, "epochs": 2}
    (search_dir / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "results/genotypes/digits/darts_2nd/seed1.json"
    assert main(["derive", "--params", str(params), "--search-dir", str(search_dir), "--out", str(out)]) == 0
    genotype = load_genotype(out)
    assert (genotype.normal, genotype.reduce) == (GENOTYPE_DARTS_V2.normal, GENOTYPE_DARTS_V2.reduce)
    assert genotype.provenance == {"method": "darts_2nd", "dataset": "digits", "seed": 1, "git_commit": "abc123",
                                   "params_sha256": "f" * 64}
    assert "node 5 <- skip_connect(c_{k-2}) + dil_conv_3x3(node 2)" in capsys.readouterr().out


def test_derive_refuses_a_search_without_summary(tmp_path: Path, params: Path, capsys) -> None:
    search_dir = tmp_path / "results/search/digits/darts_2nd/seed1"
    search_dir.mkdir(parents=True)
    (search_dir / "checkpoint.pt").write_bytes(b"")
    out = tmp_path / "seed1.json"
    assert main(["derive", "--params", str(params), "--search-dir", str(search_dir), "--out", str(out)]) == 2
    assert "is not finished" in capsys.readouterr().err
    assert not out.exists()
