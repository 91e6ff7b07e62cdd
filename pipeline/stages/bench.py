"""`python -m pipeline bench`: the cost of one search step of every method, on one fixed synthetic batch.

The papers' cost claims (DDSAS and DATA compute only sampled ops, PC-DARTS a quarter of the channels,
SDARTS-ADV attacks with 7 extra forward/backward passes, second-order DARTS 3 extra passes) decide what
a search costs before anyone runs one. This stage measures them on the machine at hand, without data:
per method, the median wall time of one architecture step plus one weight step after warm-up steps,
images per second of the weight batch, peak memory, the ratio to darts_1st, and the aten operations one
more step runs (kernel_ops.py: a GPU's kernel launches, counted on any device). `--compare reference`
times the same step on the other supernet implementation too and prints the speed-up and memory ratio.

Peak memory is the CUDA allocator's peak per method on GPU (reset before each). On CPU only the process's
maximum resident set size is available, a high-water mark that never decreases, so every CPU measurement
runs in a fresh process of its own (its peak includes the ~0.5 GB of the imported libraries).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.atomic import atomic_write_json
from pipeline.config import MethodBase, SearchTraining
from pipeline.device import choose_device, describe_device, peak_memory_mb
from pipeline.errors import PipelineError
from pipeline.methods import SearchMethod, StepContext, create_method, list_methods, method_class
from pipeline.provenance import git_commit
from pipeline.search.optimizers import architecture_optimizer, weight_optimizer
from pipeline.search.step import mixed_precision, search_step
from pipeline.space.base import BoundSpace, get_space
from pipeline.space.fast_supernet import SUPERNETS
from pipeline.space.rnn.step_net import TokenWindowNet, window_batch
from pipeline.stages.kernel_ops import count_kernel_ops

Batch = tuple[torch.Tensor, torch.Tensor]


def bench_variants() -> dict[str, MethodBase]:
    """The variants every registered method names for timing (`register_method(..., bench=...)`), validated
    by its options class; a plugin method listed under `plugins:` joins with its defaults."""
    variants: dict[str, MethodBase] = {}
    for algorithm in list_methods():
        method = method_class(algorithm)
        for name, options in method.bench_variants.items():
            variants[name] = method.options(algorithm=algorithm, **options)
    return variants


@dataclass
class Harness:
    """A supernet, a method and its optimisers on fixed batches: the search loop's step without data."""

    net: nn.Module
    method: SearchMethod
    ctx: StepContext
    train: Batch
    valid: Batch
    grad_clip: float

    def step(self) -> torch.Tensor:
        """One search step as the loop runs it; returns the weight step's training loss.

        The architecture step runs whenever the method has architecture parameters, also during a
        warm-up the real search would spend without it (DrNAS), so its cost is always measured.
        """
        ctx, method = self.ctx, self.method
        done = search_step(method, ctx, self.train, self.valid, update_architecture=bool(method.arch_parameters()),
                           grad_clip=self.grad_clip)
        assert done is not None  # no finiteness check: every step completes
        _, loss = done
        ctx.global_step += 1
        return loss


def build_harness(config: MethodBase, *, layers: int, channels: int, batch: int, image_size: int = 32,
                  in_channels: int = 3, num_classes: int = 10, nodes: int = 4,
                  device: torch.device | None = None, supernet: str = "fast", recompute: bool = False,
                  amp: bool = False) -> Harness:
    """Everything one step needs, built as the search stage builds it (same optimisers and settings);
    `amp`: the step under the search's bf16 autocast (`runtime.amp`, which a search applies on CUDA only;
    here on any device, to measure it)."""
    device = device or torch.device("cpu")
    training = SearchTraining(layers=layers, channels=channels, batch_size=batch, nodes=nodes, supernet=supernet,
                              recompute=recompute)
    space = BoundSpace.of(config.space, training)
    method = create_method(config, space, training)
    net = space.space.build_supernet(training, num_classes=num_classes, in_channels=in_channels, cells=space.cells,
                                     **method.supernet_options())
    text = space.space.data_kind == "text"
    criterion: nn.Module = nn.CrossEntropyLoss()
    if text:  # a language model over num_classes words: token windows in, next-word log-probabilities out
        net, criterion = TokenWindowNet(net), nn.NLLLoss()
    net.to(device)
    method.to(device)
    w = training.weights
    w_optimizer = weight_optimizer(net.parameters(), w)
    a_optimizer = architecture_optimizer(method.arch_parameters(), training.arch)
    ctx = StepContext(net=net, criterion=criterion, w_optimizer=w_optimizer, a_optimizer=a_optimizer,
                      epoch=0, epochs=training.epochs, lr=w.lr, device=device,
                      autocast=mixed_precision(device) if amp else contextlib.nullcontext)
    method.on_epoch_start(ctx)
    generator = torch.Generator().manual_seed(0)

    def batch_of() -> Batch:
        if text:  # image_size + 1 rows of text: a window of image_size words and the words that follow
            return window_batch(torch.randint(num_classes, (image_size + 1, batch), generator=generator).to(device))
        x = torch.randn(batch, in_channels, image_size, image_size, generator=generator)
        y = torch.randint(num_classes, (batch,), generator=generator)
        return x.to(device), y.to(device)

    return Harness(net, method, ctx, batch_of(), batch_of(), w.grad_clip)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_one(config: MethodBase, *, steps: int, warmup: int, layers: int, channels: int, batch: int,
              image_size: int, device: torch.device, supernet: str, recompute: bool = False,
              amp: bool = False) -> dict[str, Any]:
    """Median step time, throughput and peak memory of one method variant on one supernet."""
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    harness = build_harness(config, layers=layers, channels=channels, batch=batch, image_size=image_size,
                            device=device, supernet=supernet, recompute=recompute, amp=amp)
    for _ in range(warmup):
        harness.step()
    times = []
    for _ in range(steps):
        _synchronize(device)
        start = time.perf_counter()
        loss = harness.step()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    if not torch.isfinite(loss):
        raise PipelineError(f"bench: non-finite loss for {config.algorithm}")
    ops = count_kernel_ops(harness.step)  # one more step, untimed (a sampling method's: one draw's count)
    median = statistics.median(times)
    return {
        "algorithm": config.algorithm,
        "supernet": supernet,
        "recompute": recompute,
        "median_step_s": median,
        "min_step_s": min(times),
        "step_times_s": times,
        "images_per_s": batch / median,
        "peak_memory_mb": peak_memory_mb(device),
        "kernel_ops_per_step": ops.total,
    }


def measure(config: MethodBase, device: torch.device, **settings: Any) -> dict[str, Any]:
    """`bench_one`, on CPU in a fresh process so that its peak resident set is this measurement's own."""
    if device.type != "cpu":
        return bench_one(config, device=device, **settings)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context, max_tasks_per_child=1) as pool:
        return pool.submit(bench_one, config, device=device, **settings).result()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    variants = list(bench_variants())
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here (atomically)")
    parser.add_argument("--methods", nargs="+", choices=variants, default=None, metavar="VARIANT",
                        help=f"variants to time (default: all whose method is registered): {', '.join(variants)}")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per method (CPU: try 3)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    parser.add_argument("--batch", type=int, default=64, help="batch size of both halves")
    parser.add_argument("--layers", type=int, default=8, help="cells in the supernet")
    parser.add_argument("--channels", type=int, default=16, help="initial channels C")
    parser.add_argument("--image-size", type=int, default=32, help="side of the synthetic images (CIFAR: 32)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--supernet", choices=list(SUPERNETS), default="fast", help="supernet implementation to time")
    parser.add_argument("--compare", choices=list(SUPERNETS), default=None, metavar="SUPERNET",
                        help="also time this implementation (e.g. reference) and print speed-up and memory ratio")
    parser.add_argument("--recompute", action="store_true",
                        help="also time each variant whose space can recompute with search.recompute (a row "
                             "'VARIANT+recompute', compared with the same --compare measurement)")
    parser.add_argument("--amp", action="store_true",
                        help="every measurement under bf16 autocast, as runtime.amp runs a search on CUDA "
                             "(here on any device)")


def run(args: argparse.Namespace) -> int:
    if args.steps < 1 or args.warmup < 0:
        raise PipelineError("bench: --steps must be >= 1 and --warmup >= 0")
    device = choose_device(args.device)
    registered = set(list_methods())
    variants = bench_variants()
    names = args.methods or [name for name, cfg in variants.items() if cfg.algorithm in registered]
    missing = [name for name in names if variants[name].algorithm not in registered]
    if missing:
        raise PipelineError(f"bench: no method registered for {missing}; registered: {sorted(registered)}")
    settings = {"steps": args.steps, "warmup": args.warmup, "layers": args.layers, "channels": args.channels,
                "batch": args.batch, "image_size": args.image_size, "amp": args.amp}
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        try:
            rows = {name: measure(variants[name], device, supernet=args.supernet, **settings)}
            if args.recompute and "recompute" in get_space(variants[name].space).features:
                rows[f"{name}+recompute"] = measure(variants[name], device, supernet=args.supernet, recompute=True,
                                                    **settings)
            if args.compare is not None:
                other = measure(variants[name], device, supernet=args.compare, **settings)
                for row in rows.values():
                    row["compared"] = other
                    row["speedup"] = other["median_step_s"] / row["median_step_s"]
                    row["memory_ratio"] = row["peak_memory_mb"] / other["peak_memory_mb"]
        except ValueError as exc:
            raise PipelineError(f"bench: {name} cannot run with these settings: {exc}") from exc
        results.update(rows)
    reference = results.get("darts_1st", {}).get("median_step_s")
    for result in results.values():
        result["ratio_to_darts_1st"] = result["median_step_s"] / reference if reference else None
    memory = ("cuda_max_allocated_per_method" if device.type == "cuda"
              else "process_max_rss_per_method (a fresh process for each measurement)")
    report = {
        "device": describe_device(device),
        "torch": torch.__version__,
        "git_commit": git_commit(),
        "supernet": args.supernet,
        "compare": args.compare,
        "settings": settings,
        "peak_memory_measure": memory,
        "methods": results,
    }
    print(f"bench on {report['device']}: batch {args.batch}, {args.layers} cells, C={args.channels}, "
          f"{args.image_size}x{args.image_size}, {'bf16 autocast' if args.amp else 'fp32'}, median of "
          f"{args.steps} steps after {args.warmup} warm-up")
    _print_table(results, args.supernet, args.compare)
    print(f"peak memory: {memory}")
    if args.out is not None:
        atomic_write_json(args.out, report)
        print(f"wrote {args.out}")
    return 0


def _print_table(results: dict[str, dict[str, Any]], supernet: str, compare: str | None) -> None:
    other = f" | {compare} s | {compare} MB | {compare} ops | speed-up | memory" if compare else ""
    print(f"| variant | {supernet} s | img/s | {supernet} MB | {supernet} ops | x darts_1st{other} |")
    print("|---" * (6 + 5 * bool(compare)) + "|")
    for name, r in results.items():
        ratio = f"{r['ratio_to_darts_1st']:.2f}" if r["ratio_to_darts_1st"] is not None else "-"
        row = (f"| {name} | {r['median_step_s']:.4f} | {r['images_per_s']:.1f} | {r['peak_memory_mb']:.0f}"
               f" | {r['kernel_ops_per_step']} | {ratio}")
        if compare:
            c = r["compared"]
            row += (f" | {c['median_step_s']:.4f} | {c['peak_memory_mb']:.0f} | {c['kernel_ops_per_step']}"
                    f" | {r['speedup']:.2f}x | {r['memory_ratio']:.2f}x")
        print(row + " |")
