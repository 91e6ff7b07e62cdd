"""The select stage: the short retrain by which Zela et al. (and SDARTS Table 4, following them) pick one of
a method's four searched architectures, and by which DARTS (§3.2) picks its recurrent cell.

`python -m pipeline select --genotype G --dataset D --seed S --out results/select/D/M/seedS` trains the
genotype's evaluation network from scratch for `select.epochs` epochs (the variant's retrain settings on
D otherwise) on the search's training half of prepare's split and scores it on the validation half, so
the choice never sees the test split. metrics.json holds `valid_acc`; the tables pick, per dataset and
variant, the seed with the highest one (pipeline/tables/robustness.py) and report that seed's retrain.

A recurrent genotype trains its language model on the corpus for language_model.select.epochs (the retrain
settings otherwise) and is scored on the corpus' validation split, as DARTS scores its PTB cells; metrics.json
holds `valid_ppl` and no test perplexity, and the perplexity tables keep the seed with the lowest one
(pipeline/tables/selection.py says which direction each score is better in).
"""

from __future__ import annotations

import argparse

from pipeline.config import load_params
from pipeline.layout import prepared_dir
from pipeline.space.genotype import load_genotype
from pipeline.stages.lm_training import is_text_genotype
from pipeline.stages.retrain import add_arguments as add_retrain_arguments
from pipeline.stages.retrain import method_of, train_genotype, train_text_genotype


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_retrain_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from torch.utils.data import Subset

    from pipeline.data import build_dataset, load_splits

    params = load_params(args.params)
    genotype = load_genotype(args.genotype)
    method = method_of(args, genotype)
    if is_text_genotype(genotype):
        train_text_genotype(params, "select", genotype, method, args)
        return 0
    settings = params.select_settings(method, args.dataset)
    splits = (args.prepared or prepared_dir(args.dataset)) / "splits.npz"
    halves = load_splits(splits)
    data_args = {"root": params.data.root, "download": params.data.download, "indices_file": splits}
    # The search's halves index the (prepared) training split, with and without augmentation.
    train_set = Subset(build_dataset(args.dataset, "train", augment=True, cutout=settings.cutout, **data_args),
                       halves["search_train"].tolist())
    valid_set = Subset(build_dataset(args.dataset, "train", augment=False, **data_args),
                       halves["search_valid"].tolist())
    metrics = train_genotype(
        args, params, genotype, method, settings, train_set, valid_set, splits, stage="select",
        headline=lambda last: {"valid_acc": last["test_acc"], "valid_error": 100.0 - last["test_acc"]})
    if metrics is not None:
        print(f"select finished: {args.out}/metrics.json (validation accuracy {metrics['valid_acc']:.2f}%)")
    return 0
