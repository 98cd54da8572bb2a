"""From a run folder to a model: a trained learner in our format or the reference's.

The one road from a checkpoint to a :class:`RepresentationCLIP`, for the trainer's evaluation
(``load_model``) and ``mmrl.predict`` alike: :func:`read_learner` reads either format (the
reference's through the key tables its learners declare), :func:`checkpoint_arch` checks its
architecture against the CLIP at hand, :func:`create_model` builds the model and
:func:`model_from_checkpoint` does all three and loads the tensors (strictly).
"""
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch
from torch import nn

from mmrl.dassl.utils import find_checkpoint_file, load_checkpoint
from mmrl.model.mmrl import RepresentationCLIP
from mmrl.model.reference import from_reference_state_dict, is_reference_state_dict, reference_variant
from mmrl.model.representation import RepArch, check_widths, model_options

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


def checkpoint_arch(found: LearnerCheckpoint, clip_model: nn.Module, backbone: str = "") -> RepArch:
    """The architecture a checkpoint was trained with, checked against this CLIP (``backbone``
    names it in the error): a model of another backbone's widths is refused."""
    arch = RepArch.from_dict(found.arch)
    try:
        check_widths(arch, clip_model, backbone)
    except ValueError as err:
        trained = found.checkpoint.get("backbone")
        raise ValueError(f"{found.path}{f' (backbone {trained!r})' if trained else ''}: {err}") from None
    return arch


def create_model(clip_model: nn.Module, prompts: List[str], arch: RepArch, method_cfg: Mapping[str, Any],
                 **kwargs: Any) -> RepresentationCLIP:
    """The model of ``arch`` on this CLIP, its options (alpha, beta, ...) read from ``TRAINER.<variant>``
    (``method_cfg``) as its learner declares them; ``kwargs``: run settings (recompute, sharding)."""
    return RepresentationCLIP(clip_model, prompts, arch, **model_options(arch.variant, method_cfg), **kwargs)


def model_from_checkpoint(found: LearnerCheckpoint, clip_model: nn.Module, prompts: List[str],
                          method_cfg: Mapping[str, Any], backbone: str = "", **kwargs: Any) -> RepresentationCLIP:
    """The trained model of ``found`` on this CLIP, for ``prompts``."""
    model = create_model(clip_model, prompts, checkpoint_arch(found, clip_model, backbone), method_cfg, **kwargs)
    model.load_trainable_state_dict(found.state_dict)
    return model
