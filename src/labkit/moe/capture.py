"""Stream every layer's MLP inputs (and optionally outputs) from a frozen model to disk.

One ``.npy`` file per layer (``x_LLL.npy``, ``y_LLL.npy``), filled batch by batch by forward hooks
with positioned writes (``os.pwrite``), so RAM holds one batch of activations, never all layers'
activations (a 7B model with 100K tokens writes ~26 GB in bfloat16 and needs none of it in
memory). Writing through a memory map instead would leave every written page resident in the
process (SmolLM2-135M, 100K tokens: 3.4 GB of RSS for the inputs alone). Files are written
under temporary names and renamed when complete; ``meta.json`` marks a finished capture. The disk space
a capture needs is checked before it starts; temporaries of a killed capture are removed on the next
start (only those of processes that are gone: a concurrent capture's files are never touched).
bfloat16 is stored as its raw 16 bits (``uint16``).

Under ``torchrun`` (:mod:`labkit.distributed`) the ranks share one capture: the batches a single
process forms are dealt out round-robin, every rank writes its rows into the same files at the
same offsets, and rank 0 creates and finishes the files, so they are byte-identical to a single
process's (with the same number of threads per process). The ranks must see one file system.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from ..paths import atomic_write_text
from ..storage import (
    StorageError,
    atomic_file,
    remove_stale_temporaries,
    require_space,
    storage_error,
    temporary_path,
)
from .construct import decoder_layers
from .hf import child

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["ActivationStore", "capture_activations"]

_STORE_DTYPES = {"bfloat16": (torch.bfloat16, np.uint16), "float32": (torch.float32, np.float32)}


@dataclass(frozen=True)
class ActivationStore:
    """Captured activations in a folder: ``x(layer)``/``y(layer)`` return float32 tensors ``[T, d]``."""

    folder: Path
    num_layers: int
    num_tokens: int
    hidden_size: int
    store_dtype: str
    has_outputs: bool

    @classmethod
    def open(cls, folder: str | os.PathLike) -> ActivationStore | None:
        """The store in ``folder`` if a finished capture is there, else ``None``."""
        meta = Path(folder) / "meta.json"
        if not meta.is_file():
            return None
        m = json.loads(meta.read_text())
        return cls(
            Path(folder),
            m["num_layers"],
            m["num_tokens"],
            m["hidden_size"],
            m["store_dtype"],
            m["has_outputs"],
        )

    def _load(self, prefix: str, layer: int, rows: slice | None = None) -> torch.Tensor:
        path = self.folder / f"{prefix}_{layer:03d}.npy"
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise StorageError(
                getattr(err, "errno", None) or 5,
                f"cannot read captured activations {path} ({err}); delete {self.folder} and rerun "
                "(the capture is redone)",
            ) from None
        if arr.shape != (self.num_tokens, self.hidden_size):
            raise StorageError(
                5,
                f"{path} holds {arr.shape}, not {(self.num_tokens, self.hidden_size)}; delete {self.folder}",
            )
        if rows is not None:
            arr = arr[rows]
        t = torch.from_numpy(np.array(arr))  # copy: writable and off the memmap
        if self.store_dtype == "bfloat16":
            t = t.view(torch.int16).view(torch.bfloat16)
        return t.float()

    def x(self, layer: int, rows: slice | None = None) -> torch.Tensor:
        """MLP inputs of ``layer`` (float32)."""
        return self._load("x", layer, rows)

    def y(self, layer: int, rows: slice | None = None) -> torch.Tensor:
        """Dense MLP outputs of ``layer`` (float32); only when captured with ``outputs=True``."""
        if not self.has_outputs:
            raise FileNotFoundError(f"{self.folder} holds no MLP outputs (captured with outputs=False)")
        return self._load("y", layer, rows)

    def nbytes(self) -> int:
        """Bytes on disk."""
        return sum(p.stat().st_size for p in self.folder.glob("*.npy"))


def _write_rows(target: tuple[int, int, Path], arr: np.ndarray, pos: int) -> None:
    """Write ``arr``'s bytes at row offset ``pos`` (bytes) after the ``.npy`` header of ``target``."""
    fd, header, path = target
    view = np.ascontiguousarray(arr).data.cast("B")
    done = 0
    try:
        while done < len(view):  # pwrite may write less than asked
            done += os.pwrite(fd, view[done:], header + pos + done)
    except OSError as err:
        raise storage_error(err, path, "write captured activations to") from None


def capture_activations(
    model: PreTrainedModel,
    blocks: torch.Tensor,
    folder: str | os.PathLike,
    *,
    outputs: bool = False,
    store_dtype: str = "bfloat16",
    batch_size: int = 4,
    progress: bool = True,
    distributed: bool | None = None,
) -> ActivationStore:
    """Run ``model`` on token blocks ``[B, L]`` and stream each layer's MLP input (and output) to disk.

    Reuses a finished capture already in ``folder``. ``store_dtype`` is ``"bfloat16"`` (half the
    disk) or ``"float32"``. Only ``model.model`` runs (the LM head is skipped).

    ``distributed``: ``None`` shares the capture between the ranks whenever a process group of
    several ranks is running (every rank must then call this with the same arguments: it is a
    collective); ``False`` captures everything in this process.
    """
    from .. import distributed as dist

    multi = distributed is not False and dist.is_distributed()
    folder = Path(folder)
    done = ActivationStore.open(folder)
    reuse = done is not None and done.num_tokens == blocks.numel() and (done.has_outputs or not outputs)
    if multi:
        reuse = dist.broadcast_object(reuse)  # rank 0's view of the folder decides
    if reuse:
        return done or ActivationStore.open(folder)  # type: ignore[return-value]
    if store_dtype not in _STORE_DTYPES:
        raise ValueError(f"store_dtype={store_dtype!r} must be one of {sorted(_STORE_DTYPES)}")
    if multi:
        return _capture_shared(model, blocks, folder, outputs, store_dtype, batch_size, progress)
    tdt, ndt = _STORE_DTYPES[store_dtype]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise storage_error(err, folder, "create the activation folder") from None
    remove_stale_temporaries(folder)  # leftovers of a killed capture (never a running one's)
    layers = decoder_layers(model)
    n_tok = blocks.numel()
    d = int(model.config.hidden_size)
    row_bytes = d * np.dtype(ndt).itemsize
    prefixes = ("x", "y") if outputs else ("x",)
    require_space(folder, n_tok * row_bytes * len(layers) * len(prefixes), "the activation capture")
    files: dict[str, tuple[int, int, Path]] = {}  # key -> (file descriptor, header bytes, temporary)
    # every file is an atomic_file: renamed when the whole capture succeeded, removed otherwise;
    # each descriptor is closed (a callback entered after its file's context) before the rename
    with contextlib.ExitStack() as renames:
        for i in range(len(layers)):
            for prefix in prefixes:
                target = folder / f"{prefix}_{i:03d}.npy"
                tmp = renames.enter_context(atomic_file(target, ".npy", what="write captured activations to"))
                try:
                    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=ndt, shape=(n_tok, d))
                except OSError as err:
                    raise storage_error(err, tmp, "create") from None
                header = int(mm.offset)
                del mm
                fd = os.open(tmp, os.O_WRONLY)
                renames.callback(os.close, fd)
                files[f"{prefix}{i}"] = (fd, header, tmp)
        offset = [0]

        def to_np(t: torch.Tensor) -> np.ndarray:
            t = t.detach().reshape(-1, d).to("cpu", tdt)
            return t.view(torch.int16).numpy().view(np.uint16) if tdt == torch.bfloat16 else t.numpy()

        hooks = []
        for i, layer in enumerate(layers):

            def hook(_mod, args, out, i=i):
                x = args[0]
                _write_rows(files[f"x{i}"], to_np(x), offset[0] * row_bytes)
                if outputs:
                    _write_rows(files[f"y{i}"], to_np(out), offset[0] * row_bytes)

            hooks.append(child(layer, "mlp").register_forward_hook(hook))
        dev = next(model.parameters()).device
        try:
            with torch.no_grad():
                for start in tqdm(
                    range(0, blocks.shape[0], batch_size), desc="capture", disable=not progress
                ):
                    ids = blocks[start : start + batch_size]
                    model.model(input_ids=ids.to(dev), use_cache=False)
                    offset[0] += ids.numel()
        finally:
            for h in hooks:
                h.remove()
    meta = {
        "num_layers": len(layers),
        "num_tokens": n_tok,
        "hidden_size": d,
        "store_dtype": store_dtype,
        "has_outputs": outputs,
    }
    atomic_write_text(folder / "meta.json", json.dumps(meta))
    return ActivationStore(folder, len(layers), n_tok, d, store_dtype, outputs)


def _capture_shared(
    model: PreTrainedModel,
    blocks: torch.Tensor,
    folder: Path,
    outputs: bool,
    store_dtype: str,
    batch_size: int,
    progress: bool,
) -> ActivationStore:
    """:func:`capture_activations` over the ranks of a process group (every rank calls it).

    Rank 0 creates the temporary ``.npy`` files (sized for every token) and sends their names; each
    rank runs the batches ``start = 0, batch_size, 2·batch_size, …`` dealt to it round-robin and writes
    their rows at the offsets a single process would; after a barrier rank 0 renames the files and
    writes ``meta.json``, and a second barrier keeps the others from reading before that.
    """
    from .. import distributed as dist

    lead = dist.rank() == 0
    tdt, ndt = _STORE_DTYPES[store_dtype]
    layers = decoder_layers(model)
    n_tok, seq = blocks.numel(), blocks.shape[1]
    d = int(model.config.hidden_size)
    row_bytes = d * np.dtype(ndt).itemsize
    prefixes = ("x", "y") if outputs else ("x",)
    names: dict[str, tuple[int, str]] = {}  # key -> (header bytes, temporary file) from rank 0
    if lead:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise storage_error(err, folder, "create the activation folder") from None
        remove_stale_temporaries(folder)
        require_space(folder, n_tok * row_bytes * len(layers) * len(prefixes), "the activation capture")
        try:
            for i in range(len(layers)):
                for prefix in prefixes:
                    tmp = temporary_path(folder / f"{prefix}_{i:03d}.npy", ".npy")
                    names[f"{prefix}{i}"] = (0, str(tmp))
                    try:
                        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=ndt, shape=(n_tok, d))
                    except OSError as err:
                        raise storage_error(err, tmp, "create") from None
                    names[f"{prefix}{i}"] = (int(mm.offset), str(tmp))
                    del mm
        except BaseException:
            for _, name in names.values():
                Path(name).unlink(missing_ok=True)
            raise
    names = dist.broadcast_object(names)
    files = {k: (os.open(tmp, os.O_WRONLY), header, Path(tmp)) for k, (header, tmp) in names.items()}
    offset = [0]

    def to_np(t: torch.Tensor) -> np.ndarray:
        t = t.detach().reshape(-1, d).to("cpu", tdt)
        return t.view(torch.int16).numpy().view(np.uint16) if tdt == torch.bfloat16 else t.numpy()

    hooks = []
    for i, layer in enumerate(layers):

        def hook(_mod, args, out, i=i):
            _write_rows(files[f"x{i}"], to_np(args[0]), offset[0] * row_bytes)
            if outputs:
                _write_rows(files[f"y{i}"], to_np(out), offset[0] * row_bytes)

        hooks.append(child(layer, "mlp").register_forward_hook(hook))
    dev = next(model.parameters()).device
    mine = dist.shard(range(0, blocks.shape[0], batch_size), strided=True)
    try:
        with torch.no_grad():
            for start in tqdm(mine, desc="capture", disable=not (progress and lead)):
                offset[0] = start * seq
                model.model(input_ids=blocks[start : start + batch_size].to(dev), use_cache=False)
    except BaseException:
        if lead:  # rank 0 owns the temporaries; another rank's failure stops the run (torchrun)
            for _, _, tmp in files.values():
                tmp.unlink(missing_ok=True)
        raise
    finally:
        for h in hooks:
            h.remove()
        for fd, _, _ in files.values():
            os.close(fd)
    dist.barrier()  # every rank's rows are written
    if lead:
        for key, (_, _, tmp) in files.items():
            os.replace(tmp, folder / f"{key[0]}_{int(key[1:]):03d}.npy")
        meta = {
            "num_layers": len(layers),
            "num_tokens": n_tok,
            "hidden_size": d,
            "store_dtype": store_dtype,
            "has_outputs": outputs,
        }
        atomic_write_text(folder / "meta.json", json.dumps(meta))
    dist.barrier()  # the finished files are in place before any rank reads them
    return ActivationStore(folder, len(layers), n_tok, d, store_dtype, outputs)
