"""What validating a params file imports: every stage start and every Snakemake parse of the workflow (on
SLURM, once more inside each job) pays for it, so the libraries only a few code paths need stay out of it.

torchvision takes about as long to import as torch itself, and scipy is only SVHN's file reader; both are
imported where images are transformed, read or downloaded (pipeline/data/transforms.py says why). pandas
and matplotlib are the tables' (pipeline/tables/): the workflow imports them only where it reads results.
"""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY_AND_RARELY_NEEDED = ("torchvision", "scipy", "pandas", "matplotlib")


def test_validating_params_and_parsing_the_workflow_import_none_of_the_heavy_rarely_needed_libraries() -> None:
    # The modules the workflow's Python (rules/common.smk) imports, read from it rather than listed here.
    smk = (REPO / "rules/common.smk").read_text()
    modules = sorted(set(re.findall(r"^from (pipeline[\w.]*) import", smk, re.MULTILINE)))
    assert "pipeline.config" in modules, "rules/common.smk no longer imports pipeline.config; update this test"
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "from pipeline.config import load_params\n"
        "load_params('params.yaml')\n"
        f"print(sorted(name for name in {HEAVY_AND_RARELY_NEEDED!r} if name in sys.modules))\n"
    )
    # A fresh interpreter: this one has imported whatever other tests needed.
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]", f"imported while validating params: {done.stdout.strip()}"


def test_the_cifar_downloaders_named_for_later_import_are_torchvision_dataset_classes() -> None:
    # Named rather than imported (pipeline/data/cifar.py), so a typo would surface only when downloading.
    import torchvision.datasets

    from pipeline.data.cifar import cifar10, cifar100

    for source, expected in ((cifar10(), torchvision.datasets.CIFAR10), (cifar100(), torchvision.datasets.CIFAR100)):
        assert getattr(torchvision.datasets, source.downloader) is expected, source.downloader
