"""The schema of params.yaml: every key with a description and a default.

`load_params(path)` is the only way stages read configuration. Validation happens at load, so a typo or
an impossible value fails before any work starts, with the key path, what was expected and, for an
unknown key, the closest valid names. `python -m pipeline config --explain` prints the whole schema.
"""

from __future__ import annotations

import difflib
import importlib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pipeline.errors import ConfigError
from pipeline.layout import prepared_dir
from pipeline.plugins import import_plugins

DATASETS: tuple[str, ...] = ("digits", "cifar10", "cifar100", "svhn", "imagenet16_120")
# ImageNet is searched directly only by the variants in grid.imagenet_methods (the DrNAS / DDSAS protocol).
IMAGENET = "imagenet"


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# ----------------------------------------------------------------------------------------------- global


class Nb201Grid(Section):
    """A sub-grid of the NAS-Bench-201 space (`SearchSpace.subgrid` "nb201"), with grid.seeds. Its prepared
    data live apart from the main grid's (pipeline/layout.py, `prepared_dir`), as NB201 has its own splits."""

    datasets: list[str] = Field([], description="Image datasets searched and evaluated on (NB201: cifar10, "
                                                "cifar100, imagenet16_120).")
    methods: list[str] = Field([], description="Variants of space nb201 (names under search.methods).")
    retrain: bool = Field(
        True, description="Also train every derived cell with the retrain stage (NB201's protocol: "
                          "retrain.space_overrides.nb201); the tables query the benchmark where one is configured.")

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in DATASETS:
                raise ValueError(f"unknown dataset '{name}'{_did_you_mean(name, DATASETS)}; known: {list(DATASETS)}")
        return value


class RnnGrid(Section):
    """The sub-grid of the recurrent space (`SearchSpace.subgrid` "rnn"), with grid.seeds."""

    datasets: list[str] = Field([], description="Text corpora searched and retrained on (the papers: ptb).")
    methods: list[str] = Field([], description="Variants of space rnn (names under search.methods).")
    transfer: bool = Field(True, description="Also train each searched cell on grid.rnn.transfer_to.")
    transfer_to: str = Field("wikitext2", description="The text corpus the searched cells transfer to.")
    select: bool = Field(
        False, description="Also run the select stage on this sub-grid (DARTS' protocol, §3.2: every seed's cell "
                           "trained language_model.select.epochs on its corpus); per variant, only the seed with "
                           "the lowest validation perplexity is then retrained, transferred and reported, instead "
                           "of every seed's mean (Snakemake only).")

    @field_validator("datasets")
    @classmethod
    def _known_corpora(cls, value: list[str]) -> list[str]:
        for name in value:
            _check_text_dataset(name)
        return value

    @field_validator("transfer_to")
    @classmethod
    def _known_target(cls, value: str) -> str:
        return _check_text_dataset(value)

    @model_validator(mode="after")
    def _target_apart(self) -> RnnGrid:
        if self.transfer_to in self.datasets:
            raise ValueError(f"transfer_to '{self.transfer_to}' is also searched on (datasets {self.datasets}): a "
                             "transfer trains on another corpus than the search's")
        return self


def _check_text_dataset(name: str) -> str:
    # Imported by name, like the method registry (`_registry`): validation is no DVC dependency (test_dvc.py).
    corpora = importlib.import_module("pipeline.data.text.prepare").TEXT_DATASETS
    if name not in corpora:
        raise ValueError(f"unknown text corpus '{name}'{_did_you_mean(name, corpora)}; known: {list(corpora)}")
    return name


class GridConfig(Section):
    datasets: list[str] = Field(["digits"], min_length=1, description="Datasets searched and retrained on.")
    methods: list[str] = Field(
        ["darts_1st"], description="Method variants to run: names defined under search.methods (may be empty "
                                   "when a sub-grid runs)."
    )
    seeds: list[Annotated[int, Field(strict=True, ge=0)]] = Field(
        [0], min_length=1, description="Search seeds; each gives one genotype, retrained with the same seed."
    )
    transfer: bool = Field(True, description="Also train each genotype on ImageNet (the transfer stage).")
    select: bool = Field(
        False, description="Also run the select stage (a short retrain of every seed's genotype, scored on the "
                            "search's validation half) and report the selected seed in the S1-S4 tables."
    )
    imagenet_methods: list[str] = Field(
        [], description="Variants also searched directly on ImageNet (data.imagenet_root; per-class samples of "
                        "prepare.imagenet_search) and evaluated by the transfer stage, with grid.seeds."
    )

    nb201: Nb201Grid = Field(
        default_factory=lambda: Nb201Grid(),
        description="The NAS-Bench-201 sub-grid: variants of space nb201, searched and evaluated on each dataset.",
    )
    rnn: RnnGrid = Field(
        default_factory=lambda: RnnGrid(),
        description="The recurrent sub-grid: variants of space rnn, searched and retrained on each corpus (PTB), "
                    "then trained on grid.rnn.transfer_to (WikiText-2).",
    )

    def trains_cells_on_imagenet(self) -> bool:
        """Whether any cell is trained on ImageNet, which gives the grid an ImageNet table: the main grid's
        genotypes when grid.transfer (and it has variants), and every direct ImageNet search."""
        return bool(self.transfer and self.methods) or bool(self.imagenet_methods)

    @model_validator(mode="after")
    def _something_to_run(self) -> GridConfig:
        if not (self.methods or self.imagenet_methods or self.nb201.methods or self.rnn.methods):
            raise ValueError("no variant to run: list some under grid.methods, grid.imagenet_methods, "
                             "grid.nb201.methods or grid.rnn.methods")
        return self

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, value: list[str]) -> list[str]:
        for name in value:
            if name == IMAGENET:
                raise ValueError("ImageNet is not retrained on like the CIFAR-style datasets: list the variants "
                                 "to search directly on it under grid.imagenet_methods")
            if name not in DATASETS:
                raise ValueError(f"unknown dataset '{name}'{_did_you_mean(name, DATASETS)}; known: {list(DATASETS)}")
        return value


class DataConfig(Section):
    root: str = Field("data", description="Directory holding cifar10/cifar100/svhn files in torchvision's layout.")
    download: bool = Field(False, description="Let torchvision download missing CIFAR/SVHN files (needs internet).")
    imagenet_root: str = Field(
        str(prepared_dir("imagenet_demo")),
        description="ImageFolder root with train/ and val/; the default is the demo tree written by prepare.",
    )
    num_workers: Annotated[int, Field(ge=0)] = Field(0, description="DataLoader worker processes.")

    def root_of(self, dataset: str) -> Path:
        """Where `dataset`'s files are: imagenet_root for ImageNet, root for the rest."""
        return Path(self.imagenet_root if dataset == IMAGENET else self.root)


class RuntimeConfig(Section):
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto | cpu | cuda | cuda:N.")
    deterministic: bool = Field(True, description="Deterministic kernels and seeded data order (bit-exact resume).")
    amp: bool = Field(False, description="Mixed precision (bf16 autocast) on CUDA; ignored on CPU.")
    channels_last: bool = Field(False, description="channels_last memory format on CUDA; ignored on CPU.")
    threads: Annotated[int, Field(ge=1)] = Field(
        1, description="Intra-op CPU threads (torch.set_num_threads) of search, retrain and transfer, whichever "
                       "engine runs them: results depend on it, so it is a param, never the machine's core count. "
                       "At most resources.<stage>.cpus_per_task of those stages.")


class TrackingConfig(Section):
    uri: str = Field(
        "", description="MLflow tracking URI; empty: sqlite:///<repo>/mlflow.db. MLFLOW_TRACKING_URI wins."
    )
    experiment: str = Field("darts-family", min_length=1, description="MLflow experiment name.")
    enabled: bool = Field(True, description="Log runs to MLflow (results on disk are complete either way).")


class ResourceSpec(Section):
    gpu: Annotated[int, Field(ge=0)] = Field(
        0, description="GPUs per job (>1 runs torchrun for search/retrain/transfer).")
    mem_mb: Annotated[int, Field(gt=0)] = Field(2000, description="Memory per job in MB.")
    runtime: Annotated[int, Field(gt=0)] = Field(30, description="Wall-time limit per job in minutes.")
    cpus_per_task: Annotated[int, Field(ge=1)] = Field(1, description="CPU cores per job.")


class ResourcesConfig(Section):
    prepare: ResourceSpec = Field(default_factory=ResourceSpec, description="Resources of a prepare job.")
    search: ResourceSpec = Field(default_factory=ResourceSpec, description="Resources of a search job.")
    search_imagenet: ResourceSpec = Field(
        default_factory=ResourceSpec, description="Resources of a direct ImageNet search job (grid.imagenet_methods): "
                                                  "the papers searched on 8 GPUs, the CIFAR searches on one.")
    derive: ResourceSpec = Field(default_factory=ResourceSpec, description="Resources of a derive job.")
    retrain: ResourceSpec = Field(default_factory=ResourceSpec, description="Resources of a retrain job.")
    select: ResourceSpec = Field(default_factory=ResourceSpec, description="Resources of a select job.")
    transfer: ResourceSpec = Field(default_factory=ResourceSpec, description="Resources of a transfer job.")
    tables: ResourceSpec = Field(default_factory=ResourceSpec, description="Resources of the tables job.")


# ---------------------------------------------------------------------------------------------- prepare


class ImagenetDemoConfig(Section):
    image_size: Annotated[int, Field(ge=8)] = Field(32, description="Side of the PNGs written from digits.")
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(0.25, description="Share of images in val/.")


class TextDemoConfig(Section):
    vocab_size: Annotated[int, Field(ge=3)] = Field(
        2000, description="Words of the offline text corpus (from pydoc's topics); the rest become <unk>."
    )


class ImagenetSearchConfig(Section):
    weights_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.1, description="Share of each class's training images the direct search trains weights on (PC-DARTS: 10%)."
    )
    arch_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.025, description="Share of each class's training images for the architecture step (PC-DARTS: 2.5%)."
    )

    @model_validator(mode="after")
    def _disjoint(self) -> ImagenetSearchConfig:
        if self.weights_fraction + self.arch_fraction > 1:
            raise ValueError(f"weights_fraction + arch_fraction = {self.weights_fraction + self.arch_fraction} "
                             "exceeds 1; the two samples are disjoint")
        return self


class PrepareConfig(Section):
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.25, description="Hold-out share for datasets without a test split (digits)."
    )
    split_seed: Annotated[int, Field(ge=0)] = Field(
        0, description="Seed of the hold-out split and of the search-train / search-valid halving."
    )
    search_portion: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.5, description="Share of the training set the search trains weights on; the rest updates the architecture."
    )
    imagenet_demo: ImagenetDemoConfig = Field(
        default_factory=ImagenetDemoConfig, description="The offline ImageNet stand-in written from digits."
    )
    imagenet_search: ImagenetSearchConfig = Field(
        default_factory=ImagenetSearchConfig, description="What a direct ImageNet search samples of the train split."
    )
    text_demo: TextDemoConfig = Field(
        default_factory=TextDemoConfig, description="The offline word-level corpus of the recurrent space."
    )
    nb201_cifar10_split: str = Field(
        "", description="NAS-Bench-201's split file of CIFAR-10 (cifar-split.txt of D-X-Y/AutoDL-Projects): the "
                        "NB201 sub-grid's cifar10 searches on its train / valid halves; empty: the seeded split."
    )


# ----------------------------------------------------------------------------------------------- search


class WeightOptimConfig(Section):
    lr: Annotated[float, Field(gt=0)] = Field(0.025, description="SGD learning rate of the network weights.")
    lr_min: Annotated[float, Field(ge=0)] = Field(0.001, description="Cosine schedule's final learning rate.")
    momentum: Annotated[float, Field(ge=0, lt=1)] = Field(0.9, description="SGD momentum.")
    weight_decay: Annotated[float, Field(ge=0)] = Field(3e-4, description="SGD weight decay.")
    grad_clip: Annotated[float, Field(gt=0)] = Field(5.0, description="Gradient-norm clip of the weights.")
    warmup_epochs: Annotated[int, Field(ge=0)] = Field(
        0, description="Linear warm-up: epoch e < N trains at lr * (e + 1) / N, then the cosine schedule's value "
                       "(the DrNAS/DDSAS/PC-DARTS ImageNet search codes: 5 for batches above 256)."
    )


class ArchOptimConfig(Section):
    lr: Annotated[float, Field(gt=0)] = Field(3e-4, description="Adam learning rate of the architecture state.")
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = Field(
        (0.5, 0.999), description="Adam betas."
    )
    weight_decay: Annotated[float, Field(ge=0)] = Field(1e-3, description="Adam weight decay.")


class AnalysisConfig(Section):
    hessian_every: Annotated[int, Field(ge=0)] = Field(
        0, description="Dominant Hessian eigenvalue of the valid loss w.r.t. the architecture every N epochs (0: off)."
    )
    hessian_batches: Annotated[int, Field(ge=1)] = Field(1, description="Fixed validation batches for the Hessian.")
    hessian_iterations: Annotated[int, Field(ge=1)] = Field(20, description="Power-iteration steps.")


class EarlyStopConfig(Section):
    """DARTS-ES (Zela et al., ICLR 2020, Section 4.3; pipeline/search/early_stop.py has the rule)."""

    window: Annotated[int, Field(ge=1)] = Field(
        5, description="w: epochs averaged (centred) into each lambda-bar; odd (paper: 5)."
    )
    lag: Annotated[int, Field(ge=1)] = Field(
        5, description="k: stop at i when lambda-bar(i - k) / lambda-bar(i) < threshold; return epoch i - k (paper: 5)."
    )
    threshold: Annotated[float, Field(gt=0, lt=1)] = Field(0.75, description="T of the rule (paper: 0.75).")
    start_epoch: Annotated[int, Field(ge=0)] = Field(
        0, description="No stop returns an epoch before this one (released code's es_start_epoch: 10)."
    )

    @field_validator("window")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"the window is centred on its epoch, so it must be odd; got {value}")
        return value


GLOBAL_BATCH = ("Global batch size: the images of one optimiser step summed over every process of a torchrun "
                "job; each of the N processes takes batch_size / N (N must divide it), so the GPU count "
                "never changes the optimisation.")


class SearchTraining(Section):
    """The training settings of a search; a method variant may override any of them."""

    epochs: Annotated[int, Field(gt=0)] = Field(50, description="Search epochs.")
    batch_size: Annotated[int, Field(gt=0)] = Field(64, description="Batch of both halves. " + GLOBAL_BATCH)
    layers: Annotated[int, Field(ge=3)] = Field(8, description="Cells in the supernet.")
    channels: Annotated[int, Field(gt=0)] = Field(16, description="Initial channels C of the supernet.")
    nodes: Annotated[int, Field(ge=2)] = Field(4, description="Intermediate nodes per cell.")
    stem_multiplier: Annotated[int, Field(ge=1)] = Field(
        3, description="Stem width = stem_multiplier x C (CIFAR stem, and the ImageNet search stem as in the codes)."
    )
    image_size: Annotated[int, Field(ge=16)] | None = Field(
        None, description="Input side on ImageFolder data (direct ImageNet search: 224); null: the dataset's own."
    )
    max_steps_per_epoch: Annotated[int, Field(ge=0)] = Field(
        0, description="Cap on steps per epoch (0: a full pass); for smoke tests."
    )
    supernet: Literal["fast", "reference"] = Field(
        "fast", description="Supernet implementation: fast (default) or the straightforward reference it is "
        "tested against; both compute the same numbers (README, Fast supernet)."
    )
    recompute: bool = Field(
        False, description="Keep only each cell's inputs for backward and recompute the cell there: a fraction "
        "of the memory for one more forward pass per step; the same numbers (README, Fast supernet)."
    )
    weights: WeightOptimConfig = Field(default_factory=WeightOptimConfig, description="Weight optimiser.")
    arch: ArchOptimConfig = Field(default_factory=ArchOptimConfig, description="Architecture optimiser.")
    drop_path: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="ScheduledDropPath in the supernet (R-DARTS(DP)): each edge's output is dropped with a "
                         "probability ramped linearly from 0 at the first epoch to this at the last (0: off)."
    )
    early_stop: EarlyStopConfig | None = Field(
        None, description="DARTS-ES: stop when the Hessian eigenvalue grows past the rule; null: run every epoch. "
                          "Measures the eigenvalue every epoch (search.analysis' batches and iterations)."
    )


SkippedOps = Literal["frozen", "zero_grad", "computed"]
# The released SDARTS and DATA codes run every op on every step; DDSAS' runs only sampled ops.
COMPUTED_LIKE_CODE = ("Weight step, ops whose mixing weight is exactly 0 (default computed: the released code runs "
                       "every op); frozen | zero_grad | computed as for every method.")


class MethodBase(Section):
    """The options every method variant has. A method's own options subclass this in the method's module,
    which registers both with `pipeline.methods.register_method(algorithm, options=...)`; `search.methods`
    validates each variant against the options class its `algorithm` names (`method_options`)."""

    # Set by register_method: the `algorithm:` value this options class belongs to.
    registered_as: ClassVar[str | None] = None

    algorithm: str = Field(description="Selects this method; its options follow.")
    space: str = Field(
        "darts", description="Search space, a registered name (python -m pipeline spaces): darts (the 8 DARTS "
                             "ops), darts_no_none (the 7 without `none`: SDARTS s5, DrNAS), ... (docs/spaces.md)."
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="Search training keys this variant changes (e.g. epochs, layers)."
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed_primitives(cls, data: Any) -> Any:
        if isinstance(data, dict) and "primitives" in data:
            raise ValueError(f"primitives: this key was renamed to space (the same names work: "
                             f"space: {data['primitives']}); spaces are listed by python -m pipeline spaces")
        return data

    @model_validator(mode="after")
    def _own_algorithm(self) -> MethodBase:
        if self.registered_as is not None and self.algorithm != self.registered_as:
            raise ValueError(f"algorithm: {type(self).__name__} holds the options of '{self.registered_as}', "
                             f"got {self.algorithm!r}")
        return self

    def check_search(self, where: str, training: SearchTraining, shape: tuple[int, int]) -> None:
        """Refuse options that do not fit the search settings or the space (ValueError naming the key under
        `where`); `shape` is (edges, candidates) of the space's first cell type. Checked at params load."""

    skipped_ops: SkippedOps = Field(
        "frozen", description="Weight step, ops whose mixing weight is exactly 0: frozen (not computed, no gradient: "
                              "no momentum, weight decay or BN-statistics update), zero_grad (not computed, zero "
                              "gradient: momentum and weight decay apply), computed (run, as released codes that "
                              "compute every op do: BN statistics move too; costs a dense step)."
    )


def check_partial_k(key: str, k: int, training: SearchTraining) -> None:
    """Partial channels: 1/K of the search's channels enter the mixed op, so K must divide them."""
    if training.channels % k:
        raise ValueError(f"{key}: K = {k} does not divide search.channels = {training.channels}")


def _registry() -> Any:
    # Imported by name: the methods import this module for MethodBase, and validation can refuse a params
    # file but never changes a result, so it is no DVC dependency of the stages (test_dvc.py).
    return importlib.import_module("pipeline.methods")


def method_options(value: Any) -> MethodBase:
    """One `search.methods` variant: the options class registered for its `algorithm`, validated.

    Errors keep the user's key path (no union tag in it) and name what is valid: unknown algorithms the
    registered ones, unknown keys the options of that algorithm.
    """
    if isinstance(value, MethodBase):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping {{algorithm: ..., options}}, got {type(value).__name__}")
    known = _registry().list_methods()
    algorithm = value.get("algorithm")
    if algorithm not in known:
        what = "algorithm: missing" if algorithm is None else f"unknown algorithm {algorithm!r}"
        raise ValueError(f"{what}{_did_you_mean(str(algorithm), known)}; known: {known}")
    options = _registry().method_class(algorithm).options
    try:
        return options.model_validate(value)
    except ValidationError as exc:
        raise _with_valid_keys(exc, options) from None


def _with_valid_keys(exc: ValidationError, options: type[BaseModel]) -> ValidationError:
    """`exc` with each unknown key's error naming the valid keys of `options` (the schema walk of
    `_format_errors` sees only MethodBase at search.methods.<name>)."""
    details: list[Any] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            message = _unknown_key(str(loc[-1]), _fields_at(options, loc[:-1]))
            details.append({"type": PydanticCustomError("unknown_key", message), "loc": loc, "input": err["input"]})
        else:
            details.append({k: err[k] for k in ("type", "loc", "input", "ctx") if k in err})
    return ValidationError.from_exception_data(exc.title, details)


MethodOptions = Annotated[SerializeAsAny[MethodBase], BeforeValidator(method_options)]


class SearchConfig(SearchTraining):
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig, description="Search-time analyses.")
    methods: dict[str, MethodOptions] = Field(
        default_factory=lambda: {"darts_1st": {"algorithm": "darts", "order": 1}}, validate_default=True,
        description="Named method variants: {name: {algorithm: ..., options}}.",
    )


# ------------------------------------------------------------------------------------- retrain / transfer

# The released ImageNet scripts of PC-DARTS, SDARTS, DrNAS and DDSAS (`adjust_lr`) decay linearly to zero
# over all but the last five epochs and spend those five on a slope five times shallower, because lr / E
# is still a large step at the end of training (pipeline/train/schedule.py computes it).
LINEAR_TAIL_EPOCHS = 5

class RetrainConfig(Section):
    epochs: Annotated[int, Field(gt=0)] = Field(600, description="Retraining epochs.")
    batch_size: Annotated[int, Field(gt=0)] = Field(96, description=GLOBAL_BATCH)
    layers: Annotated[int, Field(ge=3)] = Field(20, description="Cells of the evaluation network.")
    channels: Annotated[int, Field(gt=0)] = Field(36, description="Initial channels C.")
    lr: Annotated[float, Field(gt=0)] = Field(0.025, description="SGD learning rate (cosine schedule).")
    lr_min: Annotated[float, Field(ge=0)] = Field(0.0, description="Cosine schedule's final learning rate.")
    momentum: Annotated[float, Field(ge=0, lt=1)] = Field(0.9, description="SGD momentum.")
    nesterov: bool = Field(False, description="Nesterov momentum (NAS-Bench-201's protocol; DARTS' is plain).")
    weight_decay: Annotated[float, Field(ge=0)] = Field(3e-4, description="SGD weight decay.")
    grad_clip: Annotated[float, Field(gt=0)] = Field(5.0, description="Gradient-norm clip.")
    auxiliary_weight: Annotated[float, Field(ge=0)] = Field(0.4, description="Auxiliary-head loss weight (0: none).")
    cutout: Annotated[int, Field(ge=0)] = Field(16, description="Cutout length in pixels (0: off).")
    drop_path: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.2, description="Final drop-path probability (ramped linearly from 0)."
    )
    pool_bn: bool = Field(False, description="Keep BN after pooling ops in the evaluation cell (DrNAS).")
    max_steps_per_epoch: Annotated[int, Field(ge=0)] = Field(0, description="Cap on steps per epoch (0: all).")
    method_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per method variant: retrain keys it changes (e.g. drnas: {drop_path: 0.3})."
    )
    dataset_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per dataset: retrain keys it changes, applied before method_overrides "
                                          "(Zela et al.'s S1-S4 protocol: cifar100 and svhn {layers: 8, channels: 16})."
    )
    space_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per search space: retrain keys of the space's own training protocol, "
                                          "applied first (before dataset_overrides and method_overrides), e.g. "
                                          "nb201: NAS-Bench-201's 200 epochs, Nesterov SGD, no auxiliary head."
    )

    @field_validator("dataset_overrides")
    @classmethod
    def _known_override_datasets(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name in value:
            if name not in DATASETS:
                raise ValueError(f"unknown dataset '{name}'{_did_you_mean(name, DATASETS)}; known: {list(DATASETS)}")
        return value


class SelectConfig(Section):
    """The selection protocol of Zela et al. used by SDARTS Table 4: every seed's genotype is retrained from
    scratch for a few epochs and the one with the best validation accuracy is the method's architecture."""

    epochs: Annotated[int, Field(gt=0)] = Field(
        10, description="Epochs of the short retrain (the papers say 'a few'; no number is given)."
    )
    max_steps_per_epoch: Annotated[int, Field(ge=0)] = Field(0, description="Cap on steps per epoch (0: all).")


class TransferConfig(Section):
    epochs: Annotated[int, Field(gt=0)] = Field(250, description="ImageNet training epochs.")
    batch_size: Annotated[int, Field(gt=0)] = Field(128, description=GLOBAL_BATCH)
    layers: Annotated[int, Field(ge=3)] = Field(14, description="Cells of the ImageNet network.")
    channels: Annotated[int, Field(gt=0)] = Field(48, description="Initial channels C.")
    lr: Annotated[float, Field(gt=0)] = Field(0.1, description="SGD learning rate.")
    lr_schedule: Literal["step", "linear", "poly"] = Field(
        "step", description="step: x step_gamma every epoch (DARTS); linear: the released ImageNet schedule of "
                            "PC-DARTS/SDARTS/DrNAS/DDSAS, lr (1 - e/(E-5)) then a 5-epoch tail to 0; "
                            "poly: lr (1 - e/E) (DATA)."
    )
    step_gamma: Annotated[float, Field(gt=0, le=1)] = Field(0.97, description="Per-epoch decay of the step schedule.")
    warmup_epochs: Annotated[int, Field(ge=0)] = Field(
        0, description="Warm-up epochs: epoch e < W trains at (e + 1) / W of the warm-up base rate."
    )
    warmup_base: Literal["scheduled", "initial"] = Field(
        "scheduled", description="Warm-up base: the epoch's scheduled rate (PC-DARTS, DDSAS code) or the "
                                 "initial lr (DrNAS code)."
    )
    momentum: Annotated[float, Field(ge=0, lt=1)] = Field(0.9, description="SGD momentum.")
    weight_decay: Annotated[float, Field(ge=0)] = Field(3e-5, description="SGD weight decay.")
    label_smoothing: Annotated[float, Field(ge=0, lt=1)] = Field(0.1, description="Label smoothing.")
    grad_clip: Annotated[float, Field(gt=0)] = Field(5.0, description="Gradient-norm clip.")
    auxiliary_weight: Annotated[float, Field(ge=0)] = Field(0.4, description="Auxiliary-head loss weight.")
    image_size: Annotated[int, Field(ge=16)] = Field(224, description="Training crop side.")
    pool_bn: bool = Field(False, description="Keep BN after pooling ops in the evaluation cell (DrNAS).")
    max_steps_per_epoch: Annotated[int, Field(ge=0)] = Field(0, description="Cap on steps per epoch (0: all).")
    method_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per method variant: transfer keys it changes (e.g. drnas: {lr: 0.5, "
                                          "lr_schedule: linear, warmup_epochs: 5, batch_size: 1024})."
    )

    @model_validator(mode="after")
    def _linear_has_a_head(self) -> TransferConfig:
        if self.lr_schedule == "linear" and self.epochs <= LINEAR_TAIL_EPOCHS:
            raise ValueError(f"lr_schedule linear needs epochs > {LINEAR_TAIL_EPOCHS} (its last {LINEAR_TAIL_EPOCHS} "
                             f"epochs are a separate tail), got {self.epochs}; use poly for short runs")
        return self


# --------------------------------------------------------------------------------------- language model
# The recurrent space's training (grid.rnn): quark0/darts rnn/train_search.py (search), rnn/train.py (PTB
# retrain) and DARTS §3.3 / DATA §4.3 (WikiText-2 transfer). A text search reads the shared search keys
# through its variant's overrides (epochs, batch_size, channels = embedding = hidden size, nodes,
# weights.lr / weight_decay / grad_clip, arch.*; the LM loop uses plain SGD at a constant rate, so
# weights.momentum, lr_min and warmup_epochs do not apply) plus `language_model.search`.


class LmDropouts(Section):
    """Drop probabilities of the language model (rnn/train.py and train_search.py flags in brackets)."""

    output: Annotated[float, Field(ge=0, lt=1)] = Field(0.75, description="On the cell's outputs (--dropout).")
    hidden: Annotated[float, Field(ge=0, lt=1)] = Field(0.25, description="On states entering a W_i (--dropouth).")
    input: Annotated[float, Field(ge=0, lt=1)] = Field(0.75, description="On x_t entering W0 (--dropoutx).")
    embedding: Annotated[float, Field(ge=0, lt=1)] = Field(0.2, description="On the embedded words (--dropouti).")
    embedding_words: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="Whole words of the embedding matrix (--dropoute).")


class LmSearchConfig(Section):
    """The text-only keys of a recurrent-cell search (train_search.py)."""

    bptt: Annotated[int, Field(ge=2)] = Field(35, description="Truncated-BPTT window (--bptt).")
    eval_batch_size: Annotated[int, Field(gt=0)] = Field(10, description="Batch of the validation pass.")
    batch_norm: bool = Field(True, description="BatchNorm (no affine) on every node of the search cell "
                                               "(train_search.py; DATA §4.3).")
    alpha: Annotated[float, Field(ge=0)] = Field(0.0, description="Activation regularisation (--alpha).")
    beta: Annotated[float, Field(ge=0)] = Field(1e-3, description="Temporal regularisation (--beta).")
    dropouts: LmDropouts = Field(default_factory=LmDropouts, description="Dropouts of the search model.")


class LmTrainConfig(Section):
    """Training a derived recurrent cell from scratch (rnn/train.py: NT-ASGD, the best validation weights
    tested); defaults: DARTS' PTB evaluation."""

    epochs: Annotated[int, Field(gt=0)] = Field(8000, description="Epochs (DARTS' train.py: 8000).")
    size: Annotated[int, Field(gt=0)] = Field(850, description="Embedding = hidden size (PTB 850, WikiText-2 700).")
    batch_size: Annotated[int, Field(gt=0)] = Field(64, description="Training batch (--batch_size).")
    eval_batch_size: Annotated[int, Field(gt=0)] = Field(10, description="Validation batch (train.py: 10).")
    test_batch_size: Annotated[int, Field(gt=0)] = Field(1, description="Test batch (train.py: 1).")
    bptt: Annotated[int, Field(ge=2)] = Field(35, description="Mean window length (--bptt).")
    max_seq_len_delta: Annotated[int, Field(ge=0)] = Field(20, description="Longest window: bptt + this.")
    lr: Annotated[float, Field(gt=0)] = Field(20.0, description="SGD / ASGD learning rate (--lr).")
    weight_decay: Annotated[float, Field(ge=0)] = Field(8e-7, description="Weight decay (--wdecay).")
    grad_clip: Annotated[float, Field(gt=0)] = Field(0.25, description="Gradient-norm clip (--clip).")
    alpha: Annotated[float, Field(ge=0)] = Field(0.0, description="Activation regularisation (--alpha).")
    beta: Annotated[float, Field(ge=0)] = Field(1e-3, description="Temporal regularisation (--beta).")
    nonmono: Annotated[int, Field(ge=1)] = Field(5, description="NT-ASGD's non-monotone interval (--nonmono).")
    dropouts: LmDropouts = Field(default_factory=LmDropouts, description="Dropouts of the evaluation model.")
    max_steps_per_epoch: Annotated[int, Field(ge=0)] = Field(0, description="Cap on steps per epoch (0: all).")
    method_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per method variant: keys it changes (e.g. DATA's 1600 epochs).")


def _wikitext2() -> LmTrainConfig:
    # DARTS §3.3 (WT2: 700 units, weight decay 5e-7, hidden dropout 0.15), as DATA §4.3 repeats.
    return LmTrainConfig(size=700, weight_decay=5e-7, dropouts=LmDropouts(hidden=0.15))


class LmSelectConfig(Section):
    """DARTS' selection of the recurrent cell (§3.2): each seed's cell trained briefly from scratch with the
    retrain settings (language_model.retrain and its method_overrides), scored by validation perplexity."""

    epochs: Annotated[int, Field(gt=0)] = Field(
        300, description="Epochs of the short training (DARTS §3.2: 300 on PTB).")
    max_steps_per_epoch: Annotated[int, Field(ge=0)] = Field(0, description="Cap on steps per epoch (0: all).")


class LanguageModelConfig(Section):
    search: LmSearchConfig = Field(default_factory=LmSearchConfig,
                                   description="Text-only search keys (the rest: search.* and overrides).")
    retrain: LmTrainConfig = Field(default_factory=LmTrainConfig,
                                   description="The retrain stage on a grid.rnn corpus (PTB).")
    select: LmSelectConfig = Field(default_factory=LmSelectConfig,
                                   description="The select stage on a grid.rnn corpus (grid.rnn.select).")
    transfer: LmTrainConfig = Field(default_factory=_wikitext2,
                                    description="The transfer stage to grid.rnn.transfer_to (WikiText-2).")


class DeriveConfig(Section):
    """Derivation rules are per method (search.methods.<name>); this section holds nothing yet."""


class BenchmarkConfig(Section):
    """Tabular benchmarks the tables stage queries instead of (or beside) training the derived cells."""

    nb201: str = Field(
        "", description="NAS-Bench-201 / NATS-Bench topology archive: a NATS-tss-*-simple/ directory (fast mode, "
                        "megabytes of memory), a NATS-tss-*.pickle.pbz2 or a NAS-Bench-201-*.pth file (read whole: "
                        "gigabytes, ~28 GB for v1.0); empty: none, the NB201 tables report our retrain's accuracy.")


class TablesConfig(Section):
    formats: list[Literal["md", "csv", "tex"]] = Field(["md", "csv", "tex"], description="Table formats written.")


# The keys of a stage section that hold overrides rather than settings.
OVERRIDE_KEYS = {"method_overrides", "dataset_overrides", "space_overrides"}

# The stages whose numbers depend on the intra-op thread count, so they pin it to runtime.threads.
THREADED_STAGES = ("search", "retrain", "select", "transfer", "search_imagenet")


class Params(Section):
    plugins: list[str] = Field(
        [], description="Python modules imported before validation, so the spaces and methods they register "
                        "can be named here (docs/spaces.md, Plugins); importable from the working directory."
    )
    grid: GridConfig = Field(default_factory=GridConfig, description="The run grid.")
    data: DataConfig = Field(default_factory=DataConfig, description="Data locations.")
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig, description="Device and determinism.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="MLflow.")
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig, description="Scheduler requests per stage.")
    prepare: PrepareConfig = Field(default_factory=PrepareConfig, description="The prepare stage.")
    search: SearchConfig = Field(default_factory=SearchConfig, description="The search stage.")
    derive: DeriveConfig = Field(default_factory=DeriveConfig, description="The derive stage.")
    retrain: RetrainConfig = Field(default_factory=RetrainConfig, description="The retrain stage.")
    select: SelectConfig = Field(default_factory=SelectConfig, description="The select stage (short retrains).")
    transfer: TransferConfig = Field(default_factory=TransferConfig, description="The transfer stage.")
    tables: TablesConfig = Field(default_factory=TablesConfig, description="The tables stage.")
    language_model: LanguageModelConfig = Field(
        default_factory=LanguageModelConfig, description="Search, retrain and transfer of the recurrent space.")
    benchmark: BenchmarkConfig = Field(default_factory=BenchmarkConfig,
                                       description="Benchmark archives the tables stage reads.")

    @model_validator(mode="after")
    def _cross_checks(self) -> Params:
        for name in self.search.methods:
            self.search_settings(name)
            _check_method(name, self.search.methods[name], self.search_settings(name))
        for key, names, subgrid in _grid_method_lists(self.grid):
            for name in names:
                if name not in self.search.methods:
                    raise ValueError(
                        f"{key}: '{name}' is not defined under search.methods"
                        f"{_did_you_mean(name, self.search.methods)}; defined: {sorted(self.search.methods)}"
                    )
                _check_subgrid(key, name, self.search.methods[name].space, subgrid)
        for stage, settings_of in (("retrain", self.retrain_settings), ("transfer", self.transfer_settings)):
            for name in getattr(self, stage).method_overrides:
                if name not in self.search.methods:
                    raise ValueError(f"{stage}.method_overrides: '{name}' is not a method under search.methods"
                                     f"{_did_you_mean(name, self.search.methods)}")
                settings_of(name)
        for stage in ("retrain", "transfer"):
            for name in getattr(self.language_model, stage).method_overrides:
                if name not in self.search.methods:
                    raise ValueError(f"language_model.{stage}.method_overrides: '{name}' is not a method under "
                                     f"search.methods{_did_you_mean(name, self.search.methods)}")
                self.lm_settings(stage, name)
        base = self.retrain.model_dump(exclude=OVERRIDE_KEYS)
        for space, overrides in self.retrain.space_overrides.items():
            _check_space_name(f"retrain.space_overrides.{space}", space)
            _merged(RetrainConfig, base, overrides, f"retrain.space_overrides.{space}")
        for dataset in self.retrain.dataset_overrides:
            for name in self.search.methods:
                self.retrain_settings(name, dataset)
        for stage in THREADED_STAGES:
            cpus = getattr(self.resources, stage).cpus_per_task
            if self.runtime.threads > cpus:
                raise ValueError(f"runtime.threads {self.runtime.threads} exceeds resources.{stage}.cpus_per_task "
                                 f"{cpus}: the job would run more threads than the CPUs it reserves")
        return self

    def method(self, name: str) -> MethodBase:
        """The variant `name` of search.methods (ConfigError naming the known ones otherwise)."""
        if name not in self.search.methods:
            raise ConfigError(f"search.methods: no method variant '{name}'{_did_you_mean(name, self.search.methods)};"
                              f" defined: {sorted(self.search.methods)}")
        return self.search.methods[name]

    def search_settings(self, name: str) -> SearchTraining:
        """The search training settings of variant `name`: the shared keys with its overrides applied."""
        base = self.search.model_dump(include=set(SearchTraining.model_fields))
        return _merged(SearchTraining, base, self.method(name).overrides, f"search.methods.{name}.overrides")

    def retrain_settings(self, name: str, dataset: str | None = None) -> RetrainConfig:
        """The retrain settings of variant `name` on `dataset`: retrain.space_overrides of the variant's space
        (its own protocol, e.g. NAS-Bench-201's), then retrain.dataset_overrides of the dataset (None: no
        dataset's), then retrain.method_overrides of the variant."""
        base = self.retrain.model_dump(exclude=OVERRIDE_KEYS)
        space = self.method(name).space
        on_space = _deep_merge(base, self.retrain.space_overrides.get(space, {}))
        where = f"retrain.space_overrides.{space} + retrain.dataset_overrides.{dataset}"
        on_dataset = _merged(RetrainConfig, on_space, self.retrain.dataset_overrides.get(dataset or "", {}), where)
        on_dataset.method_overrides = self.retrain.method_overrides
        return _with_method_overrides(on_dataset, name, "retrain")

    def select_settings(self, name: str, dataset: str) -> RetrainConfig:
        """The short retrain of the select stage: the retrain settings of `name` on `dataset`, shortened."""
        settings = self.retrain_settings(name, dataset)
        settings.epochs = self.select.epochs
        settings.max_steps_per_epoch = self.select.max_steps_per_epoch
        return settings

    def lm_settings(self, stage: str, name: str) -> LmTrainConfig:
        """The language-model training of variant `name` in `stage` ("retrain" on its corpus, "transfer" to
        grid.rnn.transfer_to): language_model.<stage> with its method_overrides applied. "select" is the
        retrain shortened to language_model.select, as select_settings shortens an image retrain."""
        if stage == "select":
            settings = self.lm_settings("retrain", name)
            settings.epochs = self.language_model.select.epochs
            settings.max_steps_per_epoch = self.language_model.select.max_steps_per_epoch
            return settings
        return _with_method_overrides(getattr(self.language_model, stage), name, f"language_model.{stage}")

    def transfer_settings(self, name: str) -> TransferConfig:
        """The transfer settings of variant `name` (transfer.method_overrides applied)."""
        return _with_method_overrides(self.transfer, name, "transfer")


def _grid_method_lists(grid: GridConfig) -> list[tuple[str, list[str], str | None]]:
    """(params key, variant names, the `SearchSpace.subgrid` its variants' spaces must have) of every list of
    variants in the grid."""
    return [("grid.methods", grid.methods, None), ("grid.imagenet_methods", grid.imagenet_methods, None),
            ("grid.nb201.methods", grid.nb201.methods, "nb201"), ("grid.rnn.methods", grid.rnn.methods, "rnn")]


def _check_subgrid(key: str, name: str, space_name: str, subgrid: str | None) -> None:
    """A variant runs in the (sub-)grid of its space: the CNN spaces in the main grid, nb201 in grid.nb201,
    rnn in grid.rnn; the stages each grid runs (transfer to ImageNet, WikiText-2) fit only that space."""
    get_space = importlib.import_module("pipeline.space.base").get_space  # by name, as `_check_text_dataset`
    belongs = get_space(space_name).subgrid
    if belongs != subgrid:
        where = "grid.methods or grid.imagenet_methods" if belongs is None else f"grid.{belongs}.methods"
        raise ValueError(f"{key}: variant '{name}' searches space '{space_name}', whose variants belong under "
                         f"{where}")


def _check_space_name(key: str, space: str) -> None:
    get_space = importlib.import_module("pipeline.space.base").get_space  # by name, as `_check_text_dataset`
    try:
        get_space(space)
    except KeyError as exc:
        raise ValueError(f"{key}: {exc.args[0]}") from None


def _with_method_overrides(section: Any, name: str, key: str) -> Any:
    """`section` with the overrides of variant `name` applied; the result holds no overrides of its own."""
    base = section.model_dump(exclude=OVERRIDE_KEYS)
    return _merged(type(section), base, section.method_overrides.get(name, {}), f"{key}.method_overrides.{name}")


def _merged(model: type[Section], base: dict[str, Any], overrides: dict[str, Any], where: str) -> Any:
    merged = _deep_merge(base, overrides)
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        raise ValueError(_format_errors(exc, prefix=where, root=model)) from None


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def check_space(name: str, method: MethodBase, training: SearchTraining) -> tuple[int, int]:
    """The variant's space exists, fits the method, and has the features the method's options need.
    Returns the (edges, candidates) shape of the space's first cell type."""
    method_class = _registry().method_class
    get_space = importlib.import_module("pipeline.space.base").get_space
    where = f"search.methods.{name}"
    try:
        space = get_space(method.space)
    except KeyError as exc:
        raise ValueError(f"{where}.space: {exc.args[0]}") from None
    algorithm = method.algorithm
    refusal = space.compatible(algorithm)
    if refusal:
        raise ValueError(f"{where}: method '{algorithm}' cannot run on space '{space.name}': {refusal}")
    for feature, why in method_class(algorithm).required_features(method).items():
        if feature not in space.features:
            raise ValueError(f"{where}: method '{algorithm}' cannot run on space '{space.name}': {why} needs the "
                             f"space feature '{feature}', which '{space.name}' does not offer")
    if training.drop_path and "drop_path" not in space.features:
        raise ValueError(f"{where}: search.drop_path is {training.drop_path}, but the supernet of space "
                         f"'{space.name}' has no drop path (space feature 'drop_path'); set it to 0")
    if training.recompute and "recompute" not in space.features:
        raise ValueError(f"{where}: search.recompute is true, but the supernet of space '{space.name}' cannot "
                         f"recompute its cells (space feature 'recompute'); set it to false")
    try:
        cells = space.cells(training)
    except ValueError as exc:
        raise ValueError(f"{where}: space '{space.name}' with these search settings: {exc}") from None
    return cells[0].shape


def _check_method(name: str, method: MethodBase, training: SearchTraining) -> None:
    """Constraints that tie a method's options to the space and the search settings."""
    method.check_search(f"search.methods.{name}", training, check_space(name, method, training))


# ------------------------------------------------------------------------------------------ loading


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; ConfigError names the file, key path and expectation."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"params file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return params_from_dict(raw or {}, source=str(path))


def params_from_dict(raw: Any, source: str = "params") -> Params:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    import_plugins(raw.get("plugins", []), source)
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + _format_errors(exc, prefix="", root=Params)) from None


def _format_errors(exc: ValidationError, prefix: str, root: type[BaseModel]) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in ((prefix,) if prefix else ()) + loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{path}: {_unknown_key(str(loc[-1]), _fields_at(root, loc[:-1]))}")
        else:
            message = err["msg"].removeprefix("Value error, ")
            got = "" if err["type"] in ("value_error", "missing", "unknown_key") else f" (got {err['input']!r})"
            # Cross-section checks run on the whole file and name their own key path.
            lines.append(f"{message}{got}" if not loc and not prefix else f"{path}: {message}{got}")
    return "\n  ".join(lines) if len(lines) == 1 else "\n  " + "\n  ".join(lines)


def _unknown_key(name: str, siblings: list[str]) -> str:
    if not siblings:
        return "unknown key"
    return f"unknown key{_did_you_mean(name, siblings)}; valid keys: {sorted(siblings)}"


def _fields_at(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The valid key names of the mapping at `loc`, walking the schema (dict values, list items, optional
    sections)."""
    annotation: Any = root
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if part not in annotation.model_fields:
                return []
            annotation = annotation.model_fields[part].annotation
        elif typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
        elif typing.get_origin(annotation) is list:
            annotation = typing.get_args(annotation)[0]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any, optional: bool = True) -> Any:
    """The type under Annotated and, if `optional`, the section of an optional one (`EarlyStopConfig | None`)."""
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif optional and typing.get_origin(annotation) in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _did_you_mean(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def explain(model: type[BaseModel] = Params, prefix: str = "") -> list[str]:
    """One line per key: path, default and description (the schema as documentation)."""
    lines = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = _unwrap(field.annotation, optional=False)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation.model_fields:
            lines.append(f"{path}: {field.description}")
            lines.extend(explain(annotation, prefix=f"{path}."))
            continue
        if field.is_required():
            lines.append(f"{path} (required): {field.description}")
            continue
        default = field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            default = default.model_dump(mode="json")
        lines.append(f"{path} = {default!r}: {field.description}")
    if model is SearchConfig:
        registry = _registry()
        for algorithm in registry.list_methods():
            lines.append(f"{prefix}methods.<name> with algorithm: {algorithm}")
            lines.extend(explain(registry.method_class(algorithm).options, prefix=f"{prefix}methods.<name>."))
    return lines
