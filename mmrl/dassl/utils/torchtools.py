"""Checkpoint files: Dassl's layout, written atomically, loaded safely."""
from __future__ import annotations

import io
import os
import os.path as osp
import pickle
import random
import re
import warnings
import zipfile
from collections import OrderedDict
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from .tools import atomic_write, atomic_write_bytes, mkdir_if_missing

POINTER_FILE = "checkpoint"
BEST_FILE = "model-best.pth.tar"
EPOCH_FILE_PREFIX = "model.pth.tar-"
_EPOCH_FILE_RE = re.compile(r"^model\.pth\.tar-(\d+)$")
# atomic_write's temporaries: ".<final name>.<random>.tmp".
_TEMPORARY_RE = re.compile(r"^\.(model\.pth\.tar-\d+|model-best\.pth\.tar|checkpoint)\..+\.tmp$")


class CheckpointError(RuntimeError):
    """A checkpoint or its pointer file cannot be used (cut short, empty, naming a missing file)."""


def epoch_file_name(epoch: int) -> str:
    """File name of the checkpoint written after ``epoch`` completed epochs."""
    return f"{EPOCH_FILE_PREFIX}{epoch}"


def _strip_module_prefix(state_dict: Dict[str, Any]) -> "OrderedDict[str, Any]":
    # DataParallel prefixes every key with "module."; checkpoints never carry it.
    out: "OrderedDict[str, Any]" = OrderedDict()
    for k, v in state_dict.items():
        out[k[7:] if k.startswith("module.") else k] = v
    return out


def write_pointer(save_dir: str, fname: str) -> None:
    """Atomically rewrite ``save_dir/checkpoint`` to name ``fname``."""
    atomic_write(
        osp.join(save_dir, POINTER_FILE),
        lambda f: f.write((fname + "\n").encode("utf-8")),
    )


def read_pointer(save_dir: str) -> str:
    """Path of the file named on the first line of ``save_dir/checkpoint``."""
    fpath = osp.join(save_dir, POINTER_FILE)
    if not osp.isfile(fpath):
        raise FileNotFoundError(
            f'No "{POINTER_FILE}" file in "{save_dir}", so there is nothing to '
            "resume from. Remove the folder to train from scratch."
        )
    with open(fpath, "r") as f:
        fname = f.readline().strip()
    if not fname:
        raise CheckpointError(f'"{fpath}" is empty; it should name a checkpoint file')
    target = osp.join(save_dir, fname)
    if not osp.isfile(target):
        raise CheckpointError(f'"{fpath}" names "{fname}", which is not in "{save_dir}"')
    return target


def remove_stale_temporaries(folder: str) -> List[str]:
    """Delete the temporary files that a save killed half-way left in ``folder``; returns their paths.

    Only called when a run starts in ``folder``, before it saves anything itself.
    """
    if not osp.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        path = osp.join(folder, name)
        if _TEMPORARY_RE.match(name) and osp.isfile(path):
            os.remove(path)
            removed.append(path)
    return removed


def save_checkpoint(
    state: Dict[str, Any],
    save_dir: str,
    is_best: bool = False,
    remove_module_from_keys: bool = True,
    model_name: str = "",
    verbose: bool = True,
) -> str:
    """Save ``state`` to ``save_dir/<model_name or model.pth.tar-<epoch>>``.

    The file and the ``checkpoint`` pointer are each written to a temporary
    file, fsynced and renamed, so a crash never leaves a half-written file
    under either name. Returns the saved path.
    """
    mkdir_if_missing(save_dir)
    if remove_module_from_keys:
        state["state_dict"] = _strip_module_prefix(state["state_dict"])
    if not model_name:
        model_name = epoch_file_name(state["epoch"])
    fpath = osp.join(save_dir, model_name)
    # Serialised first, so a full disk is reported with the exact size the file needs.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(fpath, data)
    if verbose:
        print(f"Checkpoint saved to {fpath}")
    write_pointer(save_dir, osp.basename(fpath))

    if is_best:
        best_fpath = osp.join(osp.dirname(fpath), BEST_FILE)
        atomic_write_bytes(best_fpath, data)
        print(f'Best checkpoint saved to "{best_fpath}"')
    return fpath


def torch_reason(err: BaseException) -> str:
    """torch's error in one line, without its advice to load files with ``weights_only=False``
    (never a fix for a damaged file, and unsafe for an untrusted one)."""
    text = str(err).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and "weights_only" not in line and "Weights only load failed" not in line:
            return f"{type(err).__name__}: {line}"
    return type(err).__name__


def _corrupt_error(fpath: str, err: BaseException) -> CheckpointError:
    return CheckpointError(
        f'Checkpoint "{fpath}" is corrupt or incomplete ({torch_reason(err)}); it was probably cut short '
        "while being written. Delete it, or use the previous epoch's file of that folder (a resume falls "
        "back to it by itself)."
    )


def load_checkpoint(fpath: str) -> Dict[str, Any]:
    """Load a checkpoint onto the CPU unless CUDA is available.

    Tries ``weights_only=True`` first; only files whose unpickling needs
    arbitrary objects (lineage checkpoints pickle scheduler objects) are
    reloaded with ``weights_only=False``.
    """
    if not fpath:
        raise ValueError("File path is None or empty")
    fpath = osp.abspath(osp.expanduser(fpath))
    if not osp.exists(fpath):
        raise FileNotFoundError(f'No checkpoint file at "{fpath}"')
    if osp.getsize(fpath) == 0:
        raise CheckpointError(f'Checkpoint "{fpath}" is empty (0 bytes). Delete it, or use the previous epoch\'s file.')
    map_location = None if torch.cuda.is_available() else "cpu"

    def _load(weights_only: bool) -> Any:
        try:
            return torch.load(
                fpath, map_location=map_location, weights_only=weights_only
            )
        except UnicodeDecodeError:
            # Checkpoints pickled under Python 2.
            load = partial(pickle.load, encoding="latin1")
            return torch.load(
                fpath,
                map_location=map_location,
                pickle_module=_Latin1Pickle(load),
                weights_only=False,
            )

    try:
        return _load(weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" not in str(e) and "Weights only" not in str(e):
            raise _corrupt_error(fpath, e) from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise _corrupt_error(fpath, e) from e
    try:
        return _load(weights_only=False)
    except Exception as e:  # anything that fails a full unpickle is unusable
        raise _corrupt_error(fpath, e) from e


class _Latin1Pickle:
    """A pickle module stand-in whose ``load`` decodes byte strings as latin1."""

    def __init__(self, load: Any) -> None:
        self.load = load
        self.Unpickler = partial(pickle.Unpickler, encoding="latin1")


def get_rng_state() -> Dict[str, Any]:
    """Python, NumPy and torch RNG states, in types that load with weights_only."""
    np_state = np.random.get_state()
    state: Dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what ``get_rng_state`` captured."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(
        (name, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
    )
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda")
    if cuda_states is not None and torch.cuda.is_available():
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def epoch_files(folder: str) -> List[Tuple[int, str]]:
    """``(epoch, path)`` of the ``model.pth.tar-<epoch>`` files in ``folder``, newest first."""
    found = []
    for name in os.listdir(folder) if osp.isdir(folder) else []:
        m = _EPOCH_FILE_RE.match(name)
        if m and osp.isfile(osp.join(folder, name)):
            found.append((int(m.group(1)), osp.join(folder, name)))
    return sorted(found, reverse=True)


def load_resumable(fdir: str) -> Tuple[str, Dict[str, Any]]:
    """The checkpoint a resume continues from: the one named in ``fdir/checkpoint``, or, when the
    pointer is empty or dangling or its file is damaged, the newest intact epoch file (said so)."""
    try:
        fpath = read_pointer(fdir)
        print(f'Loading checkpoint from "{fpath}"')
        return fpath, load_checkpoint(fpath)
    except CheckpointError as err:
        problem = err
    for _, candidate in epoch_files(fdir):
        try:
            checkpoint = load_checkpoint(candidate)
        except CheckpointError as err:
            print(f"Skipping {candidate}: {err}")
            continue
        print(f'{problem}\nResuming from the newest intact checkpoint instead: "{candidate}"')
        return candidate, checkpoint
    raise CheckpointError(
        f"{problem}\nNo intact checkpoint is left in \"{fdir}\" to resume from; delete the folder "
        "(or pass another --output-dir) to train from scratch."
    )


def resume_from_checkpoint(
    fdir: str,
    model: nn.Module,
    optimizer: Optional[torch.optim.Optimizer] = None,
    scheduler: Optional[Any] = None,
    return_checkpoint: bool = False,
    check: Optional[Callable[[Dict[str, Any], str], None]] = None,
) -> Union[int, Tuple[int, Dict[str, Any]]]:
    """Restore model, optimizer, scheduler (and RNG states) from the file named
    in ``fdir/checkpoint`` (see :func:`load_resumable`); return the number of completed epochs.
    ``check(checkpoint, path)`` may refuse the checkpoint before anything is loaded from it."""
    fpath, checkpoint = load_resumable(fdir)
    if check is not None:
        check(checkpoint, fpath)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as e:
        # e.g. a resume forced under another architecture (--force with other shapes).
        raise CheckpointError(
            f'"{fpath}" does not fit the model of this run ({str(e).strip().splitlines()[-1].strip()}); '
            "resume it with the config it was trained with, or use another --output-dir"
        ) from None
    print("Loaded model weights")
    if optimizer is not None and checkpoint.get("optimizer") is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        print("Loaded optimizer")
    if scheduler is not None and checkpoint.get("scheduler") is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
        print("Loaded scheduler")
    if checkpoint.get("rng_state") is not None:
        set_rng_state(checkpoint["rng_state"])
    start_epoch = checkpoint["epoch"]
    print(f"Previous epoch: {start_epoch}")
    if return_checkpoint:
        return start_epoch, checkpoint
    return start_epoch


def _listing(folder: str) -> str:
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return "(unreadable)"
    return ", ".join(names) if names else "(empty)"


def find_checkpoint_file(folder: str, epoch: Optional[int] = None) -> str:
    """Pick the file a model is loaded from inside ``folder``.

    ``model.pth.tar-<epoch>`` when ``epoch`` is given; otherwise
    ``model-best.pth.tar`` if present, else the highest-numbered
    ``model.pth.tar-<n>``. Errors name the folder and list its contents.
    """
    if not osp.isdir(folder):
        parent = osp.dirname(osp.abspath(folder))
        there = _listing(parent) if osp.isdir(parent) else "(missing too)"
        raise FileNotFoundError(
            f'No model at "{folder}": the folder does not exist. '
            f'"{parent}" holds: {there}. Check the model directory.'
        )
    if epoch is not None:
        fpath = osp.join(folder, epoch_file_name(epoch))
        if not osp.isfile(fpath):
            raise FileNotFoundError(
                f'No model at "{fpath}". The folder holds: {_listing(folder)}. '
                "Pass an epoch that was saved, or none to use the latest."
            )
        return fpath
    best = osp.join(folder, BEST_FILE)
    if osp.isfile(best):
        return best
    epochs = epoch_files(folder)
    if not epochs:
        raise FileNotFoundError(
            f'No model at "{folder}": expected "{BEST_FILE}" or '
            f'"{EPOCH_FILE_PREFIX}<epoch>". The folder holds: {_listing(folder)}.'
        )
    return epochs[0][1]


def load_pretrained_weights(model: nn.Module, weight_path: str) -> None:
    """Load every tensor of ``weight_path`` whose name and shape match ``model``."""
    checkpoint = load_checkpoint(weight_path)
    if "state_dict" in checkpoint:
        state_dict = checkpoint["state_dict"]
    else:
        state_dict = checkpoint
    model_dict = model.state_dict()
    new_state_dict: "OrderedDict[str, Any]" = OrderedDict()
    matched_layers, discarded_layers = [], []
    for k, v in _strip_module_prefix(state_dict).items():
        if k in model_dict and model_dict[k].size() == v.size():
            new_state_dict[k] = v
            matched_layers.append(k)
        else:
            discarded_layers.append(k)
    model_dict.update(new_state_dict)
    model.load_state_dict(model_dict)
    if len(matched_layers) == 0:
        warnings.warn(
            f'Cannot load "{weight_path}" (check the key names manually)'
        )
    else:
        print(f'Successfully loaded pretrained weights from "{weight_path}"')
        if len(discarded_layers) > 0:
            print(
                "Layers discarded due to unmatched keys or size: "
                f"{discarded_layers}"
            )
