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
from ..storage import StorageError, atomic_file, remove_stale_temporaries, require_space, storage_error
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
) -> ActivationStore:
    """Run ``model`` on token blocks ``[B, L]`` and stream each layer's MLP input (and output) to disk.

    Reuses a finished capture already in ``folder``. ``store_dtype`` is ``"bfloat16"`` (half the
    disk) or ``"float32"``. Only ``model.model`` runs (the LM head is skipped).
    """
    folder = Path(folder)
    done = ActivationStore.open(folder)
    if done is not None and done.num_tokens == blocks.numel() and (done.has_outputs or not outputs):
        return done
    if store_dtype not in _STORE_DTYPES:
        raise ValueError(f"store_dtype={store_dtype!r} must be one of {sorted(_STORE_DTYPES)}")
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
