"""`prepare` for the text corpora: put the three files of a corpus where the recurrent stages read them
(`results/data/{dataset}/`) and describe them in the manifest.

PTB and WikiText-2 are copied from `{data.root}/{dataset}/` (the files of CORPUS_FILES; they are not
downloaded); the demo corpora are written from pydoc's topics. Reading the copied files through
`load_corpus` validates them (every valid/test word known or `<unk>`) before the manifest records the
vocabulary size, the token counts and the checksums. The demo corpus depends on the Python version that
ships pydoc_data/topics.py; its checksum in `source_files` tells which text a run used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_write_bytes
from pipeline.data.files import sha256_file
from pipeline.data.text.corpus import CORPUS_FILES, SPLITS, load_corpus
from pipeline.data.text.demo import DEMO_DOCUMENTS, source_path, write_demo_corpus
from pipeline.errors import DataError
from pipeline.provenance import provenance

TEXT_DATASETS: tuple[str, ...] = tuple(CORPUS_FILES)


def prepare_text_corpus(name: str, out: Path, *, source_root: Path, demo_vocab_size: int) -> dict[str, Any]:
    """Write the corpus files into `out` and return the manifest (the caller writes it)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = CORPUS_FILES[name]
    if name in DEMO_DOCUMENTS:
        settings: dict[str, Any] = {"vocab_size": demo_vocab_size}
        write_demo_corpus(out, demo_vocab_size, name)
        sources = {"pydoc_data/topics.py": source_path()}
    else:
        settings = {}
        sources = {f"{name}/{files[split]}": Path(source_root) / name / files[split] for split in SPLITS}
        missing = [str(path) for path in sources.values() if not path.is_file()]
        if missing:
            raise DataError(f"{name}: missing {', '.join(missing)}; put the corpus's {', '.join(files.values())} in "
                            f"{Path(source_root) / name} (data.root/{name})")
        for split in SPLITS:
            atomic_write_bytes(out / files[split], (Path(source_root) / name / files[split]).read_bytes())
    corpus = load_corpus(out, name)
    return {
        "dataset": name,
        "sizes": {"vocab": len(corpus.vocab), **{split: len(getattr(corpus, split)) for split in SPLITS}},
        "settings": settings,
        "files": {files[split]: sha256_file(out / files[split]) for split in SPLITS},
        "source_files": {key: sha256_file(path) for key, path in sources.items()},
        "provenance": provenance("prepare", settings, dataset=name),
    }
