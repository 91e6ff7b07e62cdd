"""Query NAS-Bench-201 / NATS-Bench (topology) for the accuracy of an architecture string.

We read the benchmark's files ourselves instead of through its API packages (`nas_201_api`,
`nats_bench`, both on the package index) because those unpickle the files with the full unpickler,
and loading must never run code here (README "Security"): the records are plain dicts, lists, numbers
and strings, so an allow-list unpickler (NATS-Bench's `.pickle.pbz2`) or torch's weights-only loader
(NAS-Bench-201's `.pth`) reads every field we need. The layout is the APIs' own
(`ArchResults.state_dict()` / `ResultsCount.__dict__` in nats_bench/api_utils.py, version 1.8):

- a record per architecture index: `{hp: ArchResults}`; hp "200" (NATS-Bench) or "full" (NAS-Bench-201)
  is the 200-epoch training, "12"/"less" the short one;
- `ArchResults`: `arch_str`, `dataset_seed` {dataset: [seeds]}, `all_results` {(dataset, seed):
  ResultsCount};
- `ResultsCount`: `epochs`, `eval_acc1es` {"<set>@<epoch>": accuracy %}, `params` (MB), `flop` (M).

Three containers hold these records: the fast-mode directory `NATS-tss-v1_0-3ffb9-simple/`
(`meta.pickle.pbz2` with `meta_archs`, and `{index:06d}.pickle.pbz2` per architecture, read on demand:
megabytes of memory), the single file `NATS-tss-v1_0-3ffb9-simple.pickle.pbz2`, and NAS-Bench-201's
`NAS-Bench-201-v1_[01]-*.pth` (`meta_archs`, `arch2infos` {index: {hp: ArchResults}}), read whole (the
v1.0 file takes about 28 GB of memory: prefer the NATS-Bench directory).

Which set is "valid" and "test" per dataset follows the APIs' `remap_dataset_set_names` and the papers'
tables (DrNAS Table 4, DDSAS Table 4): CIFAR-10 valid is `cifar10-valid` (trained on 25k images)
evaluated on `x-valid`, CIFAR-10 test is `cifar10` (trained on all 50k) on `ori-test`; CIFAR-100 and
ImageNet16-120 report `x-valid` and `x-test`. Each number is the mean over the benchmark's seeds.
"""

from __future__ import annotations

import bz2
import functools
import hashlib
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from pipeline.errors import DataError
from pipeline.safe_pickle import restricted_load
from pipeline.space.nb201.arch import Nb201Arch

# (table column, benchmark dataset, evaluation set), in the papers' column order.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("cifar10_valid", "cifar10-valid", "x-valid"),
    ("cifar10_test", "cifar10", "ori-test"),
    ("cifar100_valid", "cifar100", "x-valid"),
    ("cifar100_test", "cifar100", "x-test"),
    ("imagenet16_120_valid", "ImageNet16-120", "x-valid"),
    ("imagenet16_120_test", "ImageNet16-120", "x-test"),
)
# The cost columns come from the CIFAR-10 network (10 classes), as the papers' tables quote them.
COST_DATASET = "cifar10-valid"
FULL_TRAINING = ("200", "full")  # the 200-epoch hp key of NATS-Bench and of NAS-Bench-201
_HOLDS = "a NAS-Bench-201 record holds only dicts, lists, numbers and strings"
_PICKLE_GLOBALS = {("collections", "OrderedDict"): None}  # the only class the records use
# Seed whose params/FLOPs count when the seeds disagree: NATS-Bench API v1.6 "fix the inconsistent
# flop/params" (a legacy weight migration left some trials with wrong counts; seed 888's are right).
_COST_SEED = 888
META = "meta.pickle.pbz2"


def _sha256(path: Path) -> str:
    # Not pipeline.data.files.sha256_file: importing pipeline.data loads torch, which the tables stage avoids.
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_pbz2(path: Path) -> Any:
    try:
        with bz2.open(path, "rb") as handle:
            return restricted_load(handle, _PICKLE_GLOBALS, _HOLDS)
    except FileNotFoundError:
        raise DataError(f"{path}: benchmark file not found") from None
    except (pickle.UnpicklingError, EOFError, OSError, ValueError) as exc:
        raise DataError(f"{path} is not a NATS-Bench archive file ({exc})") from exc


def _load_pth(path: Path) -> Any:
    import torch  # only for NAS-Bench-201's .pth: the tables stage queries the other archives without it

    try:
        # weights_only: torch's own allow-list unpickler (containers, numbers, strings, tensors).
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: benchmark file not found") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise DataError(f"{path} is not a NAS-Bench-201 .pth file ({exc})") from exc


@dataclass(frozen=True)
class BenchmarkResult:
    """One architecture's 200-epoch results: accuracy (%) per column of `COLUMNS`, params (MB), FLOPs (M)."""

    arch: str
    accuracy: dict[str, float]
    params_mb: float
    flops_m: float


class Nb201Benchmark:
    """A benchmark archive opened for queries; every architecture's result is computed once and kept."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._records: dict[int, Mapping[str, Any]] = {}
        self._results: dict[str, BenchmarkResult] = {}
        if self.path.is_dir():
            meta = _load_pbz2(self.path / META)
            self._lazy = True
        elif self.path.name.endswith(".pth"):
            meta = _load_pth(self.path)
            self._lazy = False
        elif self.path.name.endswith(".pickle.pbz2"):
            meta = _load_pbz2(self.path)
            self._lazy = False
        elif not self.path.exists():
            raise DataError(f"{self.path}: benchmark not found (expected a NATS-tss-*-simple/ directory, a "
                            f"NATS-tss-*.pickle.pbz2 or a NAS-Bench-201-*.pth file)")
        else:
            raise DataError(f"{self.path}: not a benchmark archive (expected a NATS-tss-*-simple/ directory, "
                            f"a NATS-tss-*.pickle.pbz2 or a NAS-Bench-201-*.pth file)")
        if not isinstance(meta, Mapping) or "meta_archs" not in meta:
            raise DataError(f"{self.path}: no 'meta_archs' list; is this a NAS-Bench-201 / NATS-Bench topology "
                            f"archive?")
        self._index = {arch: index for index, arch in enumerate(meta["meta_archs"])}
        if not self._lazy:
            if "arch2infos" not in meta:
                raise DataError(f"{self.path}: no 'arch2infos'; a single-file archive holds every record")
            self._records = dict(meta["arch2infos"])

    def __len__(self) -> int:
        return len(self._index)

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 identifying the archive, recorded with the tables: of the file's content, or for the
        fast-mode directory of its meta file's content and every record file's name and size (hashing
        its gigabytes of records at every tables run would cost more than the check is worth)."""
        if not self.path.is_dir():
            return _sha256(self.path)
        digest = hashlib.sha256(_sha256(self.path / META).encode())
        for entry in sorted(self.path.iterdir()):
            digest.update(f"{entry.name}\t{entry.stat().st_size}\n".encode())
        return digest.hexdigest()

    def query(self, arch: Nb201Arch | str) -> BenchmarkResult:
        """The 200-epoch results of `arch` (an `Nb201Arch` or its canonical string)."""
        text = arch if isinstance(arch, str) else arch.to_string()
        if text not in self._results:
            self._results[text] = self._compute(text)
        return self._results[text]

    def _record(self, text: str) -> tuple[Mapping[str, Any], str]:
        if text not in self._index:
            raise DataError(f"{self.path}: architecture {text} is not among its {len(self)} architectures")
        index = self._index[text]
        if index not in self._records:
            if not self._lazy:
                raise DataError(f"{self.path}: no record for architecture {index} ({text})")
            self._records[index] = _load_pbz2(self.path / f"{index:06d}.pickle.pbz2")
        by_hp = self._records[index]
        where = f"{self.path} record {index}"
        for hp in FULL_TRAINING:
            if isinstance(by_hp, Mapping) and hp in by_hp:
                return by_hp[hp], f"{where}, hp {hp}"
        have = list(by_hp) if isinstance(by_hp, Mapping) else type(by_hp).__name__
        raise DataError(f"{where}: no 200-epoch results (hp {' or '.join(FULL_TRAINING)}); it has {have}")

    def _compute(self, text: str) -> BenchmarkResult:
        results, where = self._record(text)
        if results.get("arch_str", text) != text:
            raise DataError(f"{where}: holds {results['arch_str']}, not {text}; the archive's index is inconsistent")
        accuracy = {column: _mean_over_seeds(results, dataset, f"eval_acc1es/{split}", where)
                    for column, dataset, split in COLUMNS}
        return BenchmarkResult(text, accuracy, _mean_over_seeds(results, COST_DATASET, "params", where),
                               _mean_over_seeds(results, COST_DATASET, "flop", where))


def _mean_over_seeds(results: Mapping[str, Any], dataset: str, field: str, where: str) -> float:
    """Mean over the dataset's seeds of `field` ("params", "flop", or "eval_acc1es/<set>" at the last epoch);
    params and FLOPs that differ between seeds are seed 888's, as the API reports them."""
    seeds = results.get("dataset_seed", {}).get(dataset)
    if not seeds:
        raise DataError(f"{where}: no trials on {dataset}")
    values = []
    for seed in seeds:
        trial = results["all_results"].get((dataset, seed))
        if trial is None:
            raise DataError(f"{where}: dataset_seed lists seed {seed} on {dataset}, but all_results has no trial")
        if field.startswith("eval_acc1es/"):
            key = f"{field.split('/', 1)[1]}@{trial['epochs'] - 1}"
            if key not in trial.get("eval_acc1es", {}):
                raise DataError(f"{where}: {dataset} seed {seed} has no accuracy '{key}'")
            values.append(float(trial["eval_acc1es"][key]))
        else:
            values.append(float(trial[field]))
    if not field.startswith("eval_acc1es/") and len({f"{v:.5f}" for v in values}) > 1 and _COST_SEED in seeds:
        return values[list(seeds).index(_COST_SEED)]
    return fmean(values)

