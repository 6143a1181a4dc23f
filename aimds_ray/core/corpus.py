"""Benign technical text for training: documentation chunks from a licence-clean source, built once and shipped.

The dev data's benign rows are short requests plus a few hundred BIPIA documents, so the learned n-gram model had
never seen ordinary technical prose: on documentation it was not trained on (the Node.js, Vim, Git, CMake, Rust,
Java and Cloud SDK docs of the build machine, chunked like pasted context; `benchmarks/ood_benign.py`) it flagged
5.8 % of chunks. This module cuts such text into prompt-sized chunks from one source whose licence allows shipping
the text and weights derived from it, the Python distribution itself (PSF-2.0): the standard library's docstrings
(read with `ast`, nothing imported) and the reference pages `pydoc` ships. Installed packages' READMEs would add
Markdown, but each under its own licence and notice; with them the documentation FPR was 1.3 % instead of 1.44 %.
The output is gzip JSONL in the training schema; `aimds train` reads it as `corpora:` in `training.yaml`. Rebuild
with `python -m aimds_ray.core.corpus --out aimds_ray/data/corpora/docs.jsonl.gz`; the committed file is what the
shipped model was trained on (docstrings change between Python versions, so building at train time would not be
reproducible).
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import json
import random
import re
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

# stdlib parts that are tests, vendored third-party code or generated tables
SKIP_PARTS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "dist-packages", "ensurepip", "turtledemo",
              "__phello__", "encodings"}


def paragraph_chunks(text: str, r: random.Random) -> Iterator[str]:
    """Consecutive paragraphs (40+ characters) joined up to a length drawn per chunk: a short paste to 2 KB."""
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if len(p.strip()) >= 40]
    limit = r.choice((300, 800, 1500, 2000))
    cur = ""
    for p in paras:
        if cur and len(cur) + len(p) + 2 > limit:
            yield cur
            cur, limit = "", r.choice((300, 800, 1500, 2000))
        cur = f"{cur}\n\n{p}" if cur else p[:2000]
    if cur:
        yield cur


def stdlib_docstrings() -> Iterator[tuple[str, str]]:
    """(module, text) per stdlib source file: its docstrings in source order, paragraphs kept."""
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if SKIP_PARTS & set(rel.parts) or rel.name.startswith("_"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        docs = [ast.get_docstring(n) for n in ast.walk(tree)
                if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)]
        text = "\n\n".join(d for d in docs if d and len(d) >= 40)
        if text:
            yield ".".join(rel.with_suffix("").parts), text


def language_reference() -> Iterator[tuple[str, str]]:
    """(topic, text) of the Python language and library reference pages that `pydoc` ships (`pydoc_data.topics`)."""
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield name, topics[name]


def build(max_rows: int = 3000, seed: int = 0) -> list[dict]:
    r = random.Random(seed)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    rows: list[dict] = []
    seen: set[bytes] = set()
    sources = [(f"python-{version}-stdlib:{m}", t) for m, t in stdlib_docstrings()]
    sources += [(f"python-{version}-reference:{m}", t) for m, t in language_reference()]
    for source, text in sources:
        for chunk in paragraph_chunks(text, r):
            key = hashlib.blake2b(chunk.encode(), digest_size=8).digest()
            if key not in seen and len(chunk) >= 80:
                seen.add(key)
                rows.append({"text": chunk, "label": 0, "category": "benign_document", "source": source,
                             "license": "PSF-2.0"})
    r.shuffle(rows)
    return rows[:max_rows]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-rows", type=int, default=3000)
    a = ap.parse_args(argv)
    rows = build(a.max_rows)
    # no name and no time in the gzip header: the same rows give the same bytes wherever they are written
    with open(a.out, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as f:
        for row in rows:
            f.write((json.dumps(row, ensure_ascii=False) + "\n").encode())
    print(json.dumps({"rows": len(rows), "out": a.out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
