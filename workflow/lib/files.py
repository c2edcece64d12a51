"""Shared file helpers for the workflow scripts: atomic writes, verified downloads, config files.

Every writer here writes to a temporary name in the destination folder and renames it into place
(``os.replace``), so a reader never sees a partial file and an interrupted run leaves nothing
behind under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it.

    The temporary name keeps ``path``'s suffix, so writers that infer a format from it work. An ``OSError`` about
    the temporary file (a folder not writable, a full disk) is raised again naming ``path``, the file asked for:

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "x.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> (folder / "x.txt").read_text(), sorted(p.name for p in folder.iterdir())
    ('done', ['x.txt'])
    >>> with atomic_path(folder / "y.txt") as tmp:
    ...     raise PermissionError(13, "Permission denied", str(tmp))
    Traceback (most recent call last):
    PermissionError: [Errno 13] Permission denied: '.../y.txt'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as e:
        raise _naming(e, path) from e
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it 0600: give it a normal file's mode
        os.replace(tmp, path)
    except OSError as e:
        if str(tmp) not in str(e):
            raise
        raise _naming(e, path, tmp) from e
    finally:
        tmp.unlink(missing_ok=True)


def _naming(error: OSError, path: Path, tmp: Path | None = None) -> OSError:
    """``error`` (about the temporary file ``tmp``) again, of the same type, about ``path``."""
    if error.errno is not None and error.strerror:
        return type(error)(error.errno, error.strerror, str(path))
    return type(error)(str(error).replace(str(tmp), str(path)) if tmp else f"{error} (writing {path})")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` (removed first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(frame, path: str | Path) -> Path:
    """A pandas DataFrame as CSV with fixed float formatting (byte-identical across runs), atomically."""
    return write_text(path, frame.to_csv(index=False, float_format="%.6f", lineterminator="\n"))


def write_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """``np.savez_compressed`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return Path(path)


def load_npz(path: str | Path, keys: list[str] | None = None) -> dict[str, np.ndarray]:
    """Read an ``.npz`` fully; a missing, truncated or corrupt file (or missing key) -> ValueError
    naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            wanted = names if keys is None else keys
            missing = [k for k in wanted if k not in names]
            if missing:
                raise ValueError(f"{path}: missing arrays {missing} (has {names})")
            return {k: z[k] for k in wanted}
    except ValueError as e:
        if str(path) in str(e):
            raise
        raise ValueError(f"{path}: corrupt or truncated npz file ({e})") from e
    except Exception as e:  # zipfile.BadZipFile, EOFError, OSError, zlib.error ...
        raise ValueError(f"{path}: corrupt or truncated npz file ({type(e).__name__}: {e})") from e


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: str | Path, *, sha256: str | None = None, md5: str | None = None,
             timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (temporary name, checksum verified, then renamed).

    A checksum mismatch raises ValueError naming the file and both digests; nothing is left under
    ``dest``. An existing ``dest`` with the right checksum is kept (idempotent).
    """
    dest = Path(dest)

    def check(p: Path) -> None:
        for algo, want in (("sha256", sha256), ("md5", md5)):
            if want:
                got = file_digest(p, algo)
                if got.lower() != want.lower():
                    raise ValueError(
                        f"{dest}: {algo} mismatch for {url}: expected {want}, got {got}"
                    )

    if dest.is_file():
        check(dest)
        return dest
    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as fh:
            shutil.copyfileobj(r, fh, 1 << 20)
        check(tmp)
    return dest


def read_config(path: str | Path) -> dict:
    """Read a JSON or YAML file into a dict (ValueError naming the file if it is neither)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: config file not found")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            obj = json.loads(text)
        else:
            import yaml

            obj = yaml.safe_load(text)
    except Exception as e:
        raise ValueError(f"{path}: cannot parse config ({e})") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a mapping at top level")
    return obj


def git_commit(start: str | Path = ".") -> str | None:
    """The checked-out commit read from ``.git`` files (no git process), or None."""
    p = Path(start).resolve()
    for d in (p, *p.parents):
        head = d / ".git" / "HEAD"
        if head.is_file():
            ref = head.read_text().strip()
            if not ref.startswith("ref: "):
                return ref
            f = d / ".git" / ref[5:]
            if f.is_file():
                return f.read_text().strip()
            packed = d / ".git" / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(ref[5:]):
                        return line.split()[0]
            return None
    return None


def provenance(**extra: Any) -> dict:
    """Package versions, git commit, host, SLURM job id (on a cluster) and any ``extra`` items."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    pkgs = {}
    for name in ("torch", "torchaudio", "ptwt", "captum", "quantus", "timm", "monai", "numpy", "pandas",
                 "snakemake", "medmnist", "nilearn", "scikit-image", "scikit-learn", "soundfile"):
        try:
            pkgs[name] = version(name)
        except PackageNotFoundError:
            pass
    return {"python": platform.python_version(), "packages": pkgs, "host": platform.node(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "git_commit": git_commit(Path(__file__).parent),
            **extra}
