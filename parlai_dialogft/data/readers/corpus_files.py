"""Where the shipped corpora live and how to open them (still compressed, as upstream).

The corpora are package data next to this package (``parlai_dialogft/data/corpora/<name>``), so
they are found relative to this file on every machine, with no download and no data path.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import inspect
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Callable, TypeVar

from parlai_dialogft.utils.errors import DataFormatError

T = TypeVar("T")
CORPORA_DIR = Path(__file__).resolve().parent.parent / "corpora"


def corpus_dir(name: str) -> Path:
    path = CORPORA_DIR / name
    if not path.is_dir():
        raise FileNotFoundError(
            f"corpus {name!r} is missing from {CORPORA_DIR}; it ships with parlai_dialogft "
            "as package data, so reinstall the package"
        )
    return path


def load_json(path: Path) -> Any:
    """Parse an upstream ``.json``, ``.json.gz`` or single-member ``.json.zip`` file."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                return json.load(handle)
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                member = path.name[: -len(".zip")]
                return json.loads(archive.read(member).decode("utf-8"))
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataFormatError(path, err.lineno, f"not valid JSON ({err.msg})") from None


def cache_dir() -> Path:
    """Where parsed corpora are kept between runs (``$DIALOGFT_CACHE_DIR`` to move it)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(os.environ.get("DIALOGFT_CACHE_DIR") or Path(base) / "parlai_dialogft")


def _cache_key(read: Callable, root: Path) -> str:
    """Changes when the reader's code or any file of the corpus changes."""
    digest = hashlib.sha1(Path(inspect.getsourcefile(read) or "").read_bytes())
    digest.update(read.__qualname__.encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def disk_cached(corpus: str) -> Callable[[Callable[[], T]], Callable[[], T]]:
    """Parse a corpus once per machine, not once per run: SGD's JSON alone takes seconds.

    The parsed conversations are pickled under :func:`cache_dir`; a cache that cannot be
    read or written is ignored (the corpus is parsed again), never an error. Within a
    process the result is also kept in memory.
    """

    def wrap(read: Callable[[], T]) -> Callable[[], T]:
        @functools.lru_cache(maxsize=None)
        @functools.wraps(read)
        def cached() -> T:
            path = cache_dir() / f"{corpus}-{_cache_key(read, corpus_dir(corpus))}.pickle"
            try:
                with open(path, "rb") as handle:
                    return pickle.load(handle)
            except (OSError, EOFError, pickle.UnpicklingError, AttributeError, TypeError, ImportError):
                pass
            result = read()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_suffix(f".{os.getpid()}.tmp")
                with open(partial, "wb") as handle:
                    pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(partial, path)  # atomic: a parallel run never reads half a file
            except OSError:
                pass
            return result

        return cached

    return wrap
