"""Reading a trained representation learner from a run folder: ours or the reference's format.

The trainer's evaluation and ``mmrl.predict`` both read checkpoints through :func:`read_learner`.
"""
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Union

import torch

from mmrl.dassl.utils import find_checkpoint_file, load_checkpoint
from mmrl.model.reference import from_reference_state_dict, is_reference_state_dict, reference_variant

# The reference implementation evaluates cross-dataset transfer from ImageNet; checkpoints that do not
# record their training dataset (the reference's own) are taken to come from there.
DEFAULT_SOURCE_DATASET = "ImageNet"
# Folder names a checkpoint of this method may sit under: ours and the reference's, then an older
# reference release's.
CHECKPOINT_FOLDERS = ("MultiModalRepresentationLearner", "MultiModalPromptLearner")


def checkpoint_folder(directory: str) -> str:
    """The folder of ``directory`` that holds the learner's checkpoints, or a clear error."""
    for name in CHECKPOINT_FOLDERS:
        folder = os.path.join(directory, name)
        if os.path.isdir(folder):
            return folder
    present = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    raise FileNotFoundError(
        f'Model not found at "{os.path.join(directory, CHECKPOINT_FOLDERS[0])}" '
        f"(the folder {directory} holds: {present or 'nothing'}). Pass the output folder of a training "
        "run with --model-dir."
    )


@dataclass
class LearnerCheckpoint:
    """A learner's trainable tensors in our key names, with what the file says about them."""

    path: str
    checkpoint: Dict[str, Any]
    state_dict: Dict[str, torch.Tensor]
    variant: str
    # RepArch fields; for a reference checkpoint REP_LAYERS come from the config, as it records none.
    arch: Dict[str, Any]
    reference: bool
    source_dataset: str

    @property
    def epoch(self) -> Optional[int]:
        return self.checkpoint.get("epoch")


def read_learner(directory: str, epoch: Optional[int],
                 rep_layers: Union[Sequence[int], Callable[[str], Sequence[int]]]) -> LearnerCheckpoint:
    """The checkpoint of ``directory`` (a run's output folder) at ``epoch`` (None: the latest).

    ``rep_layers``: the insertion layers a reference checkpoint was trained with (it does not
    record them), or a function of its variant giving them; ours carry their whole architecture.
    """
    path = find_checkpoint_file(checkpoint_folder(directory), epoch)
    checkpoint = load_checkpoint(path)
    state_dict = checkpoint["state_dict"]
    if is_reference_state_dict(state_dict):
        variant = reference_variant(state_dict)
        layers = rep_layers(variant) if callable(rep_layers) else rep_layers
        ours, arch = from_reference_state_dict(state_dict, tuple(layers))
        return LearnerCheckpoint(path, checkpoint, ours, variant, arch, True, DEFAULT_SOURCE_DATASET)
    if "arch" in checkpoint:
        arch = dict(checkpoint["arch"])
        return LearnerCheckpoint(path, checkpoint, state_dict, arch["variant"], arch, False,
                                 checkpoint.get("dataset", DEFAULT_SOURCE_DATASET))
    raise ValueError(f"{path} is neither a checkpoint of this project (no 'arch' entry) nor a reference "
                     "MMRL/MMRL++ checkpoint (no representation_learner.* keys)")


def check_learned_tensors(own: Dict[str, torch.Tensor], found: Dict[str, torch.Tensor], where: str, hint: str) -> None:
    """Every tensor of a model's state dict ``own`` is in ``found`` with its shape, or a ValueError
    naming the file ``where``, the key and the shapes, with ``hint`` (what the mismatch means)."""
    for key, value in own.items():
        if key not in found:
            raise ValueError(f'"{where}" lacks {key!r} (shape {list(value.shape)}); {hint}')
        if tuple(found[key].shape) != tuple(value.shape):
            raise ValueError(f'"{where}": {key!r} has shape {list(found[key].shape)}, this model expects '
                             f"{list(value.shape)}; {hint}")
