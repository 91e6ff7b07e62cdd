"""The recurrent chain through the stage commands: prepare both demo corpora, search on one, derive, retrain
on it and transfer to the other; the settings each stage reads from params.yaml (language_model)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.cli import main
from pipeline.config import params_from_dict
from pipeline.errors import ConfigError
from pipeline.layout import rerun_slice, search_slice
from pipeline.space.rnn.operations import num_edges

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE, NODES, TRANSFER_SIZE, VOCAB = 4, 2, 6, 40
TINY_LM = {"epochs": 2, "size": SIZE, "batch_size": 4, "eval_batch_size": 5, "test_batch_size": 5, "bptt": 5,
           "max_steps_per_epoch": 2}


def _raw() -> dict[str, Any]:
    """A params file with one recurrent variant (DARTS first order) and tiny language models."""
    return {
        "grid": {"methods": [], "rnn": {"datasets": ["text_demo"], "methods": ["lm"], "transfer_to": "text_demo2"}},
        "tracking": {"enabled": False},
        "prepare": {"text_demo": {"vocab_size": VOCAB}},
        "search": {"analysis": {"hessian_every": 1, "hessian_batches": 1, "hessian_iterations": 3},
                   "methods": {"lm": {
            "algorithm": "darts", "order": 1, "space": "rnn",
            # 6 steps: fewer leave the nodes' BatchNorm running statistics so far from the states' that the
            # evaluation-mode recurrence over the whole validation stream overflows (valid loss NaN).
            "overrides": {"epochs": 2, "batch_size": 4, "channels": SIZE, "nodes": NODES, "max_steps_per_epoch": 6,
                          "weights": {"lr": 20.0, "weight_decay": 5e-7, "grad_clip": 0.25}}}}},
        "language_model": {"search": {"bptt": 5, "eval_batch_size": 5},
                           "retrain": TINY_LM, "transfer": {**TINY_LM, "size": TRANSFER_SIZE},
                           "select": {"epochs": 1, "max_steps_per_epoch": 2}},
    }


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _lm_params(vocab: int, size: int, nodes: int) -> int:
    """Closed form of the evaluation model (DARTS rnn/model.py): the embedding V x H (the decoder reuses it),
    the decoder bias V, W0 (input + hidden) x 2H, and one H x 2H matrix per node; no other weights."""
    return vocab * size + vocab + (2 * size) * (2 * size) + nodes * size * 2 * size


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rnn_chain")
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(_raw()))
    run = ["--params", str(params)]
    for corpus in ("text_demo", "text_demo2"):
        assert main(["prepare", *run, "--dataset", corpus, "--out", str(root / "data" / corpus)]) == 0
    search = root / "search"
    assert main(["search", *run, "--dataset", "text_demo", "--method", "lm", "--seed", "0",
                 "--prepared", str(root / "data" / "text_demo"), "--out", str(search), "--no-progress"]) == 0
    assert main(["derive", *run, "--search-dir", str(search), "--out", str(root / "genotype.json")]) == 0
    assert main(["retrain", *run, "--genotype", str(root / "genotype.json"), "--dataset", "text_demo", "--seed", "0",
                 "--prepared", str(root / "data" / "text_demo"), "--out", str(root / "retrain"), "--no-progress"]) == 0
    assert main(["transfer", *run, "--genotype", str(root / "genotype.json"), "--seed", "0", "--target", "text_demo2",
                 "--prepared", str(root / "data" / "text_demo2"), "--out", str(root / "transfer"),
                 "--no-progress"]) == 0
    return root


def test_a_text_search_writes_what_an_image_search_writes(chain: Path) -> None:
    search = chain / "search"
    history = _rows(search / "history.csv")
    assert [int(row["epoch"]) for row in history] == [0, 1]
    for row in history:
        assert float(row["valid_ppl"]) == pytest.approx(math.exp(float(row["valid_loss"])))
        assert len(json.loads(row["genotype"])["recurrent"]) == NODES
        assert math.isfinite(float(row["hessian_eig"])), "search.analysis measures the Hessian every epoch"
    arch = [json.loads(line) for line in (search / "arch_weights.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in arch] == [0, 1]
    for row in arch:
        weights = row["weights"]["recurrent"]
        assert len(weights) == num_edges(NODES) == 1 + 2  # node 1 reads node 0; node 2 reads nodes 0 and 1
        assert all(sum(edge) == pytest.approx(1.0) and len(edge) == 5 for edge in weights)  # softmax over 5 ops
    summary = json.loads((search / "summary.json").read_text())
    assert summary["genotype"] == arch[-1]["genotype"] == json.loads((search / "architecture.json").read_text())[
        "genotype"]
    assert summary["provenance"]["method"] == "lm" and summary["provenance"]["dataset"] == "text_demo"
    assert summary["final_valid_ppl"] == pytest.approx(float(history[-1]["valid_ppl"]))
    assert (search / "checkpoint.pt").is_file()
    genotype = json.loads((chain / "genotype.json").read_text())
    assert genotype["search_space"] == "rnn" and genotype["provenance"]["dataset"] == "text_demo"


@pytest.mark.parametrize(("stage", "corpus", "size"), [("retrain", "text_demo", SIZE),
                                                        ("transfer", "text_demo2", TRANSFER_SIZE)])
def test_retrain_and_transfer_report_perplexity_and_the_closed_form_parameter_count(
        chain: Path, stage: str, corpus: str, size: int) -> None:
    out = chain / stage
    metrics = json.loads((out / "metrics.json").read_text())
    manifest = json.loads((chain / "data" / corpus / "manifest.json").read_text())
    vocab = manifest["sizes"]["vocab"]
    assert vocab == VOCAB
    assert metrics["dataset"] == corpus and metrics["searched_on"] == "text_demo" and metrics["size"] == size
    assert round(metrics["params_m"] * 1e6) == _lm_params(vocab, size, NODES)
    for split in ("valid", "test"):
        assert metrics[f"{split}_ppl"] == pytest.approx(math.exp(metrics[f"{split}_loss"]))
        assert 1.0 < metrics[f"{split}_ppl"] < 2 * vocab, "a tiny model after 4 steps is near uniform, not worse"
    history = _rows(out / "history.csv")
    assert [int(row["epoch"]) for row in history] == [0, 1]
    best = min(history, key=lambda row: float(row["valid_loss"]))
    assert metrics["best_epoch"] == int(best["epoch"])
    assert (out / "checkpoint.pt").is_file()
    assert metrics["provenance"]["stage"] == stage


def test_select_trains_the_retrain_model_briefly_and_scores_validation_perplexity_only(chain: Path) -> None:
    """DARTS §3.2: each cell trained from scratch for a short period with the retrain settings, ranked by
    validation perplexity; the test split is never evaluated."""
    out = chain / "select"
    assert main(["select", "--params", str(chain / "params.yaml"), "--genotype", str(chain / "genotype.json"),
                 "--dataset", "text_demo", "--seed", "0", "--prepared", str(chain / "data" / "text_demo"),
                 "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["valid_ppl"] == pytest.approx(math.exp(metrics["valid_loss"]))
    assert not {"test_ppl", "test_loss"} & set(metrics)
    assert metrics["epochs"] == 1 and [int(row["epoch"]) for row in _rows(out / "history.csv")] == [0]
    assert metrics["size"] == SIZE and round(metrics["params_m"] * 1e6) == _lm_params(VOCAB, SIZE, NODES)
    assert metrics["provenance"]["stage"] == "select"


def test_rerunning_a_finished_training_reports_the_same_numbers(chain: Path, tmp_path: Path) -> None:
    before = json.loads((chain / "retrain" / "metrics.json").read_text())
    assert main(["retrain", "--params", str(chain / "params.yaml"), "--genotype", str(chain / "genotype.json"),
                 "--dataset", "text_demo", "--seed", "0", "--prepared", str(chain / "data" / "text_demo"),
                 "--out", str(chain / "retrain"), "--no-progress"]) == 0
    after = json.loads((chain / "retrain" / "metrics.json").read_text())
    for key in ("valid_ppl", "test_ppl", "params_m", "best_epoch"):
        assert after[key] == before[key]


def test_transfer_of_a_recurrent_cell_needs_its_target_corpus(chain: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["transfer", "--params", str(chain / "params.yaml"), "--genotype", str(chain / "genotype.json"),
                 "--seed", "0", "--out", str(chain / "no_target")])
    assert code != 0
    assert "--target" in capsys.readouterr().err


def test_language_model_settings_apply_method_overrides_and_refuse_unknown_variants() -> None:
    raw = _raw()
    raw["language_model"]["retrain"]["method_overrides"] = {"lm": {"epochs": 7, "dropouts": {"hidden": 0.1}}}
    params = params_from_dict(raw)
    settings = params.lm_settings("retrain", "lm")
    assert settings.epochs == 7 and settings.dropouts.hidden == 0.1 and settings.dropouts.output == 0.75
    # The transfer defaults are DARTS' WikiText-2 ones (§3.3): 700 units, weight decay 5e-7, hidden dropout 0.15.
    default = params_from_dict({}).language_model.transfer
    assert (default.size, default.weight_decay, default.dropouts.hidden) == (700, 5e-7, 0.15)
    assert "language_model" in search_slice(params, "lm")
    # The select stage's training is the retrain's (overrides included), shortened to language_model.select.
    short = params.lm_settings("select", "lm")
    assert (short.epochs, short.max_steps_per_epoch) == (1, 2)
    assert short.model_copy(update={"epochs": 7, "max_steps_per_epoch": 2}) == settings
    raw["language_model"]["transfer"]["method_overrides"] = {"lmm": {"epochs": 3}}
    with pytest.raises(ConfigError, match=r"language_model\.transfer\.method_overrides: 'lmm'.*did you mean 'lm'"):
        params_from_dict(raw)


def test_select_jobs_rerun_on_the_select_and_retrain_keys_retrain_jobs_not_on_the_select_ones() -> None:
    """Snakemake's rerun slices: a recurrent select job reads language_model.select and the retrain settings
    it shortens; a retrain job never reads language_model.select."""
    def slices(raw: dict[str, Any]) -> tuple[Any, Any]:
        params = params_from_dict(raw)
        return rerun_slice("select", params, "text_demo", "lm"), rerun_slice("retrain", params, "text_demo", "lm")

    select, retrain = slices(_raw())
    longer = _raw()
    longer["language_model"]["select"]["epochs"] = 3
    assert slices(longer)[0] != select and slices(longer)[1] == retrain
    wider = _raw()
    wider["language_model"]["retrain"]["size"] = 8
    assert slices(wider)[0] != select and slices(wider)[1] != retrain


def test_a_text_search_refuses_nan_skipping(chain: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["search", "--params", str(chain / "params.yaml"), "--dataset", "text_demo", "--method", "lm",
                 "--seed", "0", "--prepared", str(chain / "data" / "text_demo"), "--out", str(chain / "nan_skip"),
                 "--allow-nan-skip", "2"])
    assert code != 0 and "--allow-nan-skip" in capsys.readouterr().err
