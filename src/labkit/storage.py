"""Safe storage: output folders labkit may replace, locks, checksums, quarantine, I/O errors naming the file.

The rules every writer in labkit follows:

* **Never delete what labkit did not write.** A folder that labkit writes as a whole (a converted
  model, an exported checkpoint, a results copy) gets a marker file, :data:`MARKER`, listing the files
  labkit put there. :func:`replace_dir` replaces a folder only when it is absent, empty, or carries the
  marker and holds nothing else; :func:`check_output_dir` refuses the working directory, the home folder,
  the cache root and the folders above any of them, files, and non-empty folders of someone else's —
  before any expensive step.
* **Writes are atomic**: into a temporary sibling named ``.<name>.labkit-tmp-<pid>-…``, then renamed:
  :func:`atomic_file` for a file (whoever writes it: labkit, safetensors, a compiler;
  :func:`labkit.paths.atomic_write_bytes` and :func:`labkit.paths.atomic_write_text` for bytes and
  text), :func:`replace_dir` for a folder.
  Temporaries of processes that no longer run are removed on the next start
  (:func:`remove_stale_temporaries`).
* **Integrity**: :func:`write_manifest` records SHA-256 and size of each file; :func:`verify_manifest`
  checks them on load. A damaged cache entry is moved aside with :func:`quarantine` (never deleted) and
  recomputed, and a :class:`CacheRepairWarning` says so.
* **Locks** (:func:`file_lock`) where two runs can meet: the second waits for the first, then finds
  its results.
* **Every I/O error names the file and what to do** (:func:`storage_error`, :func:`require_space`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "MARKER",
    "MANIFEST",
    "CacheRepairWarning",
    "LockTimeoutError",
    "OutputPathError",
    "StorageError",
    "atomic_file",
    "check_output_dir",
    "check_writable",
    "file_lock",
    "is_labkit_temporary",
    "quarantine",
    "remove_stale_temporaries",
    "replace_dir",
    "temporary_path",
    "require_space",
    "sha256_file",
    "storage_error",
    "verify_manifest",
    "write_manifest",
]

MARKER = ".labkit-output.json"
MANIFEST = "labkit_checksums.json"
_TMP_TAG = ".labkit-tmp-"
_OLD_TAG = ".labkit-old-"


class StorageError(OSError):
    """An I/O failure, re-raised with the file, the cause and what to do (keeps ``errno``)."""


class OutputPathError(ValueError):
    """An output path labkit must not write to (a file, a protected or foreign folder, read-only)."""


class LockTimeoutError(TimeoutError):
    """Another labkit run held a lock for longer than ``LABKIT_LOCK_TIMEOUT`` seconds."""


class CacheRepairWarning(UserWarning):
    """A damaged cache entry was moved aside and is being recomputed."""


# --------------------------------------------------------------------------- errors
def _free_mb(path: Path) -> float | None:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free / 2**20
    except OSError:
        return None


def storage_error(err: OSError, path: str | os.PathLike, action: str, *, needed_mb: float | None = None):
    """A :class:`StorageError` for ``err`` raised while ``action`` (e.g. ``"write"``) on ``path``.

    The message names the file, the cause, and what to do: free space (with the free and needed
    megabytes) for a full disk, another folder for a read-only one.
    """
    path = Path(path)
    code = err.errno
    cause = err.strerror or str(err)
    if code == errno.ENOSPC:
        free = _free_mb(path.parent)
        need = f"; this step needs about {needed_mb:,.0f} MB" if needed_mb else ""
        have = f"{free:,.0f} MB free" if free is not None else "free space unknown"
        hint = (
            f"the disk holding {path.parent} is full ({have}{need}). Free space there, or point "
            "LABKIT_CACHE / --out / --cache at a folder on another disk, then rerun (finished work resumes)"
        )
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = (
            f"{path.parent} is not writable. Choose a writable folder (--out, --cache or the "
            "LABKIT_CACHE environment variable)"
        )
    elif code in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        hint = "a file stands where a folder is expected (or the reverse); choose another path"
    else:
        hint = "check the path and the disk, then rerun (finished work resumes)"
    out = StorageError(code, f"cannot {action} {path}: {cause}. {hint}.")
    out.filename = str(path)
    return out


def require_space(folder: str | os.PathLike, nbytes: int, what: str) -> None:
    """Raise :class:`StorageError` (``ENOSPC``) before a step that writes ``nbytes`` to ``folder``
    when the disk has less free space than that (plus 5 %)."""
    folder = Path(folder)
    free = _free_mb(folder)
    need = nbytes * 1.05 / 2**20
    if free is not None and free < need:
        raise StorageError(
            errno.ENOSPC,
            f"not enough disk space for {what} in {folder}: needs about {need:,.0f} MB, "
            f"{free:,.0f} MB free. Free space there, or set LABKIT_CACHE to a folder on a larger disk.",
        )


# --------------------------------------------------------------------------- output folders
def _protected() -> list[Path]:
    from .paths import cache_root

    out = [Path.cwd().resolve(), Path.home().resolve(), Path(Path.cwd().anchor).resolve()]
    with contextlib.suppress(OSError):
        out.append(cache_root().resolve())
    return out


def _read_marker(folder: Path) -> dict | None:
    try:
        meta = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("writer") == "labkit" else None


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def _foreign_files(folder: Path) -> list[str]:
    """Files in ``folder`` that its labkit marker does not list (everything when there is no marker)."""
    meta = _read_marker(folder)
    files = [f for f in _listing(folder) if f != MARKER]
    if meta is None:
        return files
    ours = set(meta.get("files", []))
    return [f for f in files if f not in ours]


def check_writable(folder: str | os.PathLike, *, label: str = "folder") -> Path:
    """Raise :class:`OutputPathError` unless files can be created in ``folder`` (or where it would be made).

    Tries it (a temporary file, removed at once): permission bits say nothing to root, and a
    read-only mount shows only on writing.
    """
    folder = Path(folder).expanduser()
    _probe_writable(folder, label)
    return folder


def _probe_writable(folder: Path, label: str) -> None:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputPathError(f"{label}={folder}: {probe} is a file, so no folder can be made there")
    try:
        fd, name = tempfile.mkstemp(prefix=".labkit-probe-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise OutputPathError(
            f"{label}={folder}: {probe} is not writable ({err.strerror}); choose a writable folder"
        ) from None


def check_output_dir(path: str | os.PathLike, *, label: str = "output folder") -> Path:
    """Validate a folder that labkit will fill or replace, before any expensive step.

    Refuses: a path that is a file; the working directory, the home folder, the filesystem root,
    labkit's cache root, and any folder containing one of those; a non-empty folder without labkit's
    marker, or one holding files the marker does not list; a location where nothing can be written.
    Returns the absolute path.

    Raises
    ------
    OutputPathError
        Naming ``label`` (e.g. ``"--out"``), the path and the reason.
    """
    raw = Path(path).expanduser()
    folder = raw.resolve()
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"{label}={raw} is a file, not a folder; choose a folder path")
    for prot in _protected():
        if folder == prot or folder in prot.parents:
            raise OutputPathError(
                f"{label}={raw} resolves to {folder}, which is or contains {prot} (the working directory, "
                "the home folder or labkit's cache); labkit replaces its output folder as a whole, so "
                "choose a new subfolder"
            )
    if folder.is_dir():
        foreign = _foreign_files(folder)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise OutputPathError(
                f"{label}={raw} already holds files labkit did not write ({shown}); labkit never deletes "
                "them. Choose a new or empty folder, or move those files away"
            )
    _probe_writable(folder, label)
    return folder


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_labkit_temporary(name: str) -> int | None:
    """The pid in a labkit temporary name (``….labkit-tmp-<pid>-…`` / ``.labkit-old-``), else ``None``."""
    for tag in (_TMP_TAG, _OLD_TAG):
        if tag in name:
            head = name.split(tag, 1)[1].split("-", 1)[0].split(".", 1)[0]
            if head.isdigit():
                return int(head)
    return None


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove labkit temporaries in ``folder`` whose process is gone (after a kill); returns them."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        pid = is_labkit_temporary(p.name)
        if pid is None or pid == os.getpid() or _pid_alive(pid):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)  # a labkit temporary (its name says so) of a dead run
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def temporary_path(target: str | os.PathLike, suffix: str = "") -> Path:
    """A sibling temporary name for ``target`` that :func:`remove_stale_temporaries` recognises."""
    target = Path(target)
    return target.with_name(f".{target.name}{_TMP_TAG}{os.getpid()}-{os.urandom(3).hex()}{suffix}")


@contextlib.contextmanager
def atomic_file(
    target: str | os.PathLike, suffix: str = "", *, what: str = "write", needed_mb: float | None = None
) -> Iterator[Path]:
    """Write a file atomically: the block writes the yielded temporary path, which then replaces ``target``.

    The temporary is a sibling of ``target`` (same file system, so ``os.replace`` is atomic) named by
    :func:`temporary_path` with ``suffix`` (some writers want an extension), and the folder is
    created first. A reader never sees a half-written ``target``; if the block raises, the
    temporary is removed and ``target`` is untouched. The file's data is flushed to disk
    (``fsync``) before the rename.

    Raises
    ------
    StorageError
        On an I/O failure (disk full, read-only folder, ...) in the block or the rename, naming
        ``target``, ``what`` failed and what to do (with ``needed_mb`` when the disk is full).
    """
    target = Path(target)
    tmp = temporary_path(target, suffix)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as err:
        if isinstance(err, StorageError):
            raise
        raise storage_error(err, target, what, needed_mb=needed_mb) from None
    finally:
        tmp.unlink(missing_ok=True)


def replace_dir(
    target: str | os.PathLike, write: Callable[[Path], None], *, kind: str, label: str = "output folder"
) -> Path:
    """Write a folder atomically: ``write(tmp)`` fills a temporary sibling, which then replaces ``target``.

    ``target`` may be absent, empty, or a folder labkit wrote earlier (its marker lists every file in it);
    anything else is refused by :func:`check_output_dir` before ``write`` runs. The new folder gets a
    marker (``kind`` and its file list). On failure the temporary is removed and ``target`` is untouched.
    """
    target = check_output_dir(target, label=label)
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise storage_error(err, parent, "create the folder") from None
    remove_stale_temporaries(parent)
    tmp = temporary_path(target)
    old = None
    try:
        tmp.mkdir()
        write(tmp)
        marker = {"writer": "labkit", "kind": kind, "files": _listing(tmp)}
        (tmp / MARKER).write_text(json.dumps(marker, indent=1))
        if target.exists():
            if _foreign_files(target):  # someone wrote into it meanwhile: keep it
                raise OutputPathError(f"{label}={target} changed while labkit worked; nothing was replaced")
            old = target.with_name(f".{target.name}{_OLD_TAG}{os.getpid()}-{os.urandom(3).hex()}")
            os.replace(target, old)
        os.replace(tmp, target)
    except OSError as err:
        _remove_own(tmp)
        if old is not None and old.exists() and not target.exists():
            os.replace(old, target)
        raise (err if isinstance(err, StorageError) else storage_error(err, target, "write")) from None
    except BaseException:
        _remove_own(tmp)
        if old is not None and old.exists() and not target.exists():
            os.replace(old, target)
        raise
    if old is not None:
        _remove_own(old)
    return target


def _remove_own(path: Path) -> None:
    """Remove a temporary or replaced folder that labkit itself created (its name carries the tag)."""
    if is_labkit_temporary(path.name) is None:
        raise AssertionError(f"refusing to remove {path}: not a labkit temporary")
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


# --------------------------------------------------------------------------- checksums
def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(folder: str | os.PathLike, files: list[str] | None = None) -> dict:
    """Record SHA-256 and size of ``files`` (default: every file) of ``folder`` in :data:`MANIFEST`."""
    folder = Path(folder)
    names = files if files is not None else [f for f in _listing(folder) if f not in (MANIFEST, MARKER)]
    entries = {
        n: {"sha256": sha256_file(folder / n), "bytes": (folder / n).stat().st_size} for n in sorted(names)
    }
    (folder / MANIFEST).write_text(json.dumps(entries, indent=1))
    return entries


def verify_manifest(folder: str | os.PathLike) -> list[str]:
    """Problems with ``folder``'s files against its :data:`MANIFEST` (empty list = intact).

    Each problem names the file: missing, wrong size (truncated) or wrong checksum. A folder without a
    manifest reports that as its problem.
    """
    folder = Path(folder)
    try:
        entries = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return [f"{folder / MANIFEST} is missing"]
    except (OSError, ValueError) as err:
        return [f"{folder / MANIFEST} is unreadable ({err})"]
    problems = []
    for name, e in entries.items():
        p = folder / name
        if not p.is_file():
            problems.append(f"{p} is missing")
        elif p.stat().st_size != e["bytes"]:
            problems.append(f"{p} has {p.stat().st_size} bytes, {e['bytes']} were written (truncated?)")
        elif sha256_file(p) != e["sha256"]:
            problems.append(f"{p} does not match its checksum (corrupted on disk)")
    return problems


def quarantine(path: str | os.PathLike, reason: str) -> Path:
    """Move a damaged cache entry aside (``<name>.corrupt-<time>``), warn, and return the new path.

    Nothing is deleted: the warning says where the entry went and that it can be removed.
    """
    path = Path(path)
    dest = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    os.replace(path, dest)
    warnings.warn(
        f"{path}: {reason}. Moved it to {dest} (delete that when you no longer need it) and recomputing.",
        CacheRepairWarning,
        stacklevel=2,
    )
    return dest


# --------------------------------------------------------------------------- locks
def _lock_timeout() -> float:
    try:
        return float(os.environ.get("LABKIT_LOCK_TIMEOUT", "21600"))
    except ValueError:
        return 21600.0


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, *, what: str, timeout: float | None = None) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` (a small lock file, created if needed, never deleted).

    A second holder waits, saying once on stderr which process holds the lock, for at most ``timeout``
    seconds (default ``LABKIT_LOCK_TIMEOUT``, 6 h), then raises :class:`LockTimeoutError`. The lock is
    released when the holder exits, however it exits (``kill -9`` included): it is an ``flock``.
    """
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking available
        yield path
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise storage_error(err, path, "create the lock file") from None
    limit = _lock_timeout() if timeout is None else timeout
    t0 = time.monotonic()
    told = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                if time.monotonic() - t0 >= limit:
                    raise LockTimeoutError(
                        f"{what} is locked by another labkit run (pid {holder}, lock {path}) for over "
                        f"{limit:.0f} s; wait for it to finish, or stop it"
                    ) from None
                if not told:
                    print(
                        f"labkit: waiting for {what}: another run (pid {holder}) holds {path}",
                        file=sys.stderr,
                    )
                    told = True
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        os.close(fd)
