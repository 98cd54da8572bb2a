"""Classify your own images with a trained MMRL / MMRL++ model.

    python -m mmrl.predict --model-dir RUN [--load-epoch E] PATH... [--topk 5]
                           [--format table|csv|json] [--output FILE] [--classnames FILE] [--template T]

PATH: image files, or folders searched recursively for images. From Python::

    model = mmrl.load("output/.../seed1")
    for p in model.predict(["cat.jpg", "dog.png"]):
        print(p.path, p.classes[0], p.probabilities[0])

Everything is read from the run's checkpoint: the architecture, the resolved config (backbone,
method values, test transform), the class names and the prompt template it was trained with.
CLIP weights come from ``MODEL.BACKBONE.NAME`` or ``MODEL.BACKBONE.PATH`` as at training
(``--backbone-path`` points elsewhere). Checkpoints of the reference implementation record none
of this: give ``--classnames`` and ``--template`` (and ``--config-file`` when it was not trained
with ``configs/trainers/<variant>/vit_b16.yaml``).

Decoupled inference: with the class names the model was trained on, the fused logits (class +
representation features) are scored; with any other class set, the class-token logits alone.
The output says which; ``--logits`` forces one.
"""
import argparse
import contextlib
import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from PIL import Image
from tabulate import tabulate
from tqdm import tqdm
from yacs.config import CfgNode

from mmrl.cli import UserError, check_output_file, run_main, user_errors
from mmrl.config import default_cfg
from mmrl.dassl.config import merge_from_file_checked
from mmrl.dassl.data.data_manager import read_image
from mmrl.dassl.data.transforms import build_transform
from mmrl.dassl.engine.trainer import autocast_for, resolve_precision
from mmrl.model.checkpoint import LearnerCheckpoint, model_from_checkpoint, read_learner
from mmrl.model.clip_loader import check_input_size, class_prompts, load_clip
from mmrl.model.mmrl import CLASS_TOKEN, FUSED, RepresentationCLIP, decoupled_inference

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
LOGITS_CHOICES = ("auto", FUSED, CLASS_TOKEN)
FORMATS = ("table", "csv", "json")
# Images per forward pass; the trainer's evaluation runs its batches in chunks of the same size.
BATCH_SIZE = 32
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ImageInput = Union[str, "os.PathLike[str]", Image.Image]
ACCEPTED = "an image path (str or os.PathLike), a PIL image, or a list of them"


def _as_items(images: Any) -> List[ImageInput]:
    """``images`` as a list of items: one path or PIL image is one item (a string is not a
    sequence of paths); anything else is a TypeError that says what is accepted."""
    if isinstance(images, (str, os.PathLike, Image.Image)):
        return [images]
    if isinstance(images, (bytes, dict)) or not hasattr(images, "__iter__"):
        raise TypeError(f"predict() takes {ACCEPTED}, not {type(images).__name__}")
    items = list(images)
    for i, item in enumerate(items):
        if not isinstance(item, (str, os.PathLike, Image.Image)):
            raise TypeError(f"predict(): item {i} ({item!r:.60}) is of type {type(item).__name__}; "
                            f"each item must be an image path (str or os.PathLike) or a PIL image")
    return items


@dataclass
class Prediction:
    """The top-k classes of one image, most probable first; ``error`` set for a skipped image."""

    path: str
    classes: List[str]
    probabilities: List[float]
    error: Optional[str] = None

    @property
    def label(self) -> Optional[str]:
        return self.classes[0] if self.classes else None


class Predictor:
    """A trained model ready to classify images (see :func:`load`)."""

    def __init__(self, model: RepresentationCLIP, classnames: List[str], template: str, scored: str,
                 reason: str, transform: Any, device: torch.device, precision: str, source: str) -> None:
        self.model = model
        self.classnames = classnames
        self.template = template
        self.scored = scored  # FUSED or CLASS_TOKEN
        self.reason = reason  # why those logits
        self.transform = transform
        self.device = device
        self.precision = precision
        self.source = source  # the checkpoint file
        with torch.no_grad(), autocast_for(precision, device):
            # Text features depend only on the learner and the class names: computed once.
            self.text_features = model.text_features()

    @property
    def rule(self) -> str:
        return f"{self.scored} logits ({self.reason})"

    def _tensor(self, image: ImageInput) -> torch.Tensor:
        img = image.convert("RGB") if isinstance(image, Image.Image) else read_image(os.fspath(image))
        return self.transform(img)

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """The scored logits [B, C] of a batch of transformed images [B, 3, H, W]."""
        with autocast_for(self.precision, self.device):
            logits = self.model.inference_logits(images.to(self.device), self.text_features, self.scored)
        return logits.float()

    def predict(self, images: Union[ImageInput, Sequence[ImageInput]], topk: int = 5, batch_size: int = BATCH_SIZE,
                skip_unreadable: bool = False, progress: bool = False) -> List[Prediction]:
        """Top-``topk`` classes with probabilities for each image (a path or a PIL image), in order;
        a single path or image is one item (a list of one prediction).

        An unreadable file raises an error naming it, or with ``skip_unreadable`` gets a
        :class:`Prediction` with ``error`` set and no classes.
        """
        images = _as_items(images)
        for name, value in (("topk", topk), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"predict(): {name} must be an int, not {type(value).__name__}")
            if value < 1:
                raise ValueError(f"predict(): {name} must be at least 1, got {value}")
        k = min(topk, len(self.classnames))
        names = [f"<image {i}>" if isinstance(img, Image.Image) else os.fspath(img) for i, img in enumerate(images)]
        out: List[Optional[Prediction]] = [None] * len(images)
        starts = range(0, len(images), batch_size)
        for start in tqdm(starts, file=sys.stderr, disable=not progress or None, desc="predict", unit="batch"):
            tensors, index = [], []
            for i in range(start, min(start + batch_size, len(images))):
                try:
                    tensors.append(self._tensor(images[i]))
                except OSError as err:  # FileNotFoundError too
                    if not skip_unreadable:
                        raise
                    out[i] = Prediction(names[i], [], [], error=str(err))
                    continue
                index.append(i)
            if not tensors:
                continue
            probs = self.logits(torch.stack(tensors)).softmax(dim=-1)
            top_p, top_i = probs.topk(k, dim=-1)
            for row, i in enumerate(index):
                out[i] = Prediction(names[i], [self.classnames[j] for j in top_i[row].tolist()],
                                    top_p[row].tolist())
        return out  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Loading


def read_classnames(path: str) -> List[str]:
    """One class name per line (blank lines ignored)."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"--classnames {path} is a folder: give a text file with one class name per line")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--classnames {path}: no such file (give a text file with one class name per line)")
    try:
        with open(path, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as err:
        raise ValueError(f"--classnames {path} is not UTF-8 text ({err.reason} at byte {err.start}): "
                         "give a text file with one class name per line") from None
    if not names:
        raise ValueError(f"--classnames {path} holds no class names (one per line)")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"--classnames {path} names {dup!r} twice")
    return names


def _config(found: LearnerCheckpoint, config_file: Optional[str]) -> CfgNode:
    """The run's resolved config: the one stored in the checkpoint, else defaults + a method YAML."""
    stored = found.checkpoint.get("config")
    if stored is not None and config_file is None:
        return CfgNode.load_cfg(stored) if isinstance(stored, str) else CfgNode(dict(stored))
    cfg = default_cfg(found.variant)  # the method's keys are declared by its trainer
    merge_from_file_checked(cfg, config_file or _default_config_file(found.variant))
    if found.checkpoint.get("backbone"):
        cfg.MODEL.BACKBONE.NAME = found.checkpoint["backbone"]
    return cfg


def _default_config_file(variant: str) -> str:
    path = os.path.join(REPO_ROOT, "configs", "trainers", variant, "vit_b16.yaml")  # the reference's config
    if not os.path.isfile(path):
        raise FileNotFoundError(f"the checkpoint stores no config and {path} does not exist: "
                                "pass --config-file with the method YAML the model was trained with")
    return path


def load(run_dir: str, epoch: Optional[int] = None, classnames: Optional[Sequence[str]] = None,
         template: Optional[str] = None, logits: str = "auto", config_file: Optional[str] = None,
         backbone_path: Optional[str] = None, device: Optional[str] = None) -> Predictor:
    """A :class:`Predictor` for the model a training run saved in ``run_dir``.

    ``classnames`` / ``template`` replace the ones stored in the checkpoint (required for reference
    checkpoints, which store none); ``logits`` "auto" applies decoupled inference, "fused" or
    "class" force one; ``config_file`` replaces the stored config (reference checkpoints:
    default ``configs/trainers/<variant>/vit_b16.yaml``). What loading prints goes to stderr.
    """
    run_dir, classnames, device = _check_load_args(run_dir, epoch, classnames, template, device)
    # The engine's progress lines (CLIP loading, transforms) are diagnostics: stdout is kept for results.
    with contextlib.redirect_stdout(sys.stderr):
        return _load(run_dir, epoch, classnames, template, logits, config_file, backbone_path, device)


def _check_load_args(run_dir: Any, epoch: Any, classnames: Any, template: Any,
                     device: Any) -> Tuple[str, Optional[List[str]], Optional[str]]:
    """load()'s arguments checked before anything is read: types (TypeError) and values (ValueError)."""
    if not isinstance(run_dir, (str, os.PathLike)):
        raise TypeError(f"load(): run_dir must be a folder path (str or os.PathLike), not {type(run_dir).__name__}")
    run_dir = os.fspath(run_dir)
    if os.path.isfile(run_dir):
        raise NotADirectoryError(f"--model-dir {run_dir} is a file: give the output folder of a training run "
                                 "(the folder that holds MultiModalRepresentationLearner/)")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int)):
        raise TypeError(f"load(): epoch must be an int or None, not {type(epoch).__name__}")
    names = None
    if classnames is not None:
        if isinstance(classnames, (str, bytes)) or not hasattr(classnames, "__iter__"):
            raise TypeError(f"load(): classnames must be a list of class names, not {type(classnames).__name__}")
        names = list(classnames)
        bad = [n for n in names if not isinstance(n, str) or not n.strip()]
        if bad or not names:
            raise ValueError(f"classnames must be non-empty strings, got {bad[0]!r}" if bad
                             else "classnames is empty: give at least one class name")
    if template is not None:
        if not isinstance(template, str):
            raise TypeError(f"load(): template must be a str, not {type(template).__name__}")
        try:
            filled = template.format("x")
        except (IndexError, KeyError, ValueError) as err:
            raise ValueError(f"--template {template!r}: not a prompt template ({type(err).__name__}: {err}); "
                             "write it with one {} for the class name, e.g. 'a photo of a {}.'") from None
        if filled == template:
            raise ValueError(f"--template {template!r} has no {{}} for the class name, e.g. 'a photo of a {{}}.'")
    if device is not None:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"--device {device!r} is not a device: use cpu, cuda or cuda:N") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available here (torch.cuda.is_available() is False); "
                             "use --device cpu")
        if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s) "
                             f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
        device = str(dev)
    return run_dir, names, device


def _load(run_dir: str, epoch: Optional[int], classnames: Optional[Sequence[str]], template: Optional[str],
          logits: str, config_file: Optional[str], backbone_path: Optional[str], device: Optional[str]) -> Predictor:
    if logits not in LOGITS_CHOICES:
        raise ValueError(f"logits must be one of {LOGITS_CHOICES}, got {logits!r}")
    if config_file is not None and not os.path.isfile(config_file):
        raise FileNotFoundError(f"--config-file {config_file}: no such file")

    def reference_layers(variant: str) -> Sequence[int]:
        cfg = default_cfg(variant)
        merge_from_file_checked(cfg, config_file or _default_config_file(variant))
        return cfg.TRAINER[variant].REP_LAYERS

    found = read_learner(run_dir, epoch, reference_layers)
    trained = found.checkpoint.get("classnames")
    names = list(classnames) if classnames is not None else trained
    template = template if template is not None else found.checkpoint.get("template")
    if names is None or template is None:
        what = "a reference-implementation checkpoint, which records" if found.reference else "a checkpoint that records"
        raise ValueError(
            f"{found.path} is {what} neither class names nor prompt template: pass --classnames FILE "
            "(one class name per line) and --template 'a photo of a {}.' (the template it was trained with)"
        )
    cfg = _config(found, config_file)
    cfg.defrost()
    cfg.TRAINER.NAME = found.variant
    if backbone_path:
        cfg.MODEL.BACKBONE.PATH = backbone_path

    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(cfg, dev)
    backbone = cfg.MODEL.BACKBONE.NAME
    clip_model = load_clip(backbone, cfg.MODEL.BACKBONE.PATH, device=dev, fp16=precision == "fp16")
    check_input_size(clip_model, cfg.INPUT.SIZE, backbone)
    model = model_from_checkpoint(found, clip_model, class_prompts(template, names), cfg.TRAINER[found.variant],
                                  backbone)
    model.to(dev).eval()

    if logits != "auto":
        scored, reason = logits, "chosen with --logits"
    elif trained is None:
        scored = decoupled_inference(False)
        reason = ("the checkpoint does not record the classes it was trained on; "
                  "pass --logits fused if these are they")
    elif set(names) == set(trained):
        scored, reason = decoupled_inference(True), f"the {len(trained)} classes the model was trained on"
    else:
        scored = decoupled_inference(False)
        reason = "class names other than the ones the model was trained on: decoupled inference"
    transform = build_transform(cfg, is_train=False)
    return Predictor(model, names, template, scored, reason, transform, dev, precision, found.path)


# ---------------------------------------------------------------------------------------------
# Command line


def find_images(paths: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(image files, paths that do not exist). Folders are searched recursively for image
    extensions; a file named directly is taken whatever its extension."""
    files: List[str] = []
    missing: List[str] = []
    for path in paths:
        if os.path.isdir(path):
            for folder, dirs, names in os.walk(path):
                dirs.sort()
                files += [os.path.join(folder, n) for n in sorted(names)
                          if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith(".")]
        elif os.path.isfile(path):
            files.append(path)
        else:
            missing.append(path)
    return files, missing


def render(predictions: Sequence[Prediction], fmt: str, predictor: Predictor, topk: int) -> str:
    done = [p for p in predictions if p.error is None]
    if fmt == "json":
        payload = {
            "checkpoint": predictor.source,
            "logits": predictor.scored,
            "rule": predictor.reason,
            "classes": len(predictor.classnames),
            "predictions": [{"path": p.path, "top": [{"class": c, "probability": q}
                                                      for c, q in zip(p.classes, p.probabilities)]} for p in done],
            "skipped": [{"path": p.path, "error": p.error} for p in predictions if p.error is not None],
        }
        return json.dumps(payload, indent=2, ensure_ascii=False)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["path", "rank", "class", "probability", "logits"])
        for p in done:
            for rank, (c, q) in enumerate(zip(p.classes, p.probabilities), 1):
                writer.writerow([p.path, rank, c, f"{q:.6f}", predictor.scored])
        return buffer.getvalue().rstrip("\n")
    k = min(topk, len(predictor.classnames))
    rows = [[p.path] + [f"{c} ({100 * q:.1f}%)" for c, q in zip(p.classes, p.probabilities)] for p in done]
    table = tabulate(rows, headers=["image"] + [f"top-{i}" for i in range(1, k + 1)], tablefmt="github",
                     disable_numparse=True)
    return f"Scored: the {predictor.rule}\n\n{table}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mmrl.predict", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    p.add_argument("--model-dir", required=True, help="the output folder of a training run")
    p.add_argument("--load-epoch", type=int, default=None, help="checkpoint epoch (default: the latest)")
    p.add_argument("--topk", type=int, default=5, help="classes shown per image (default 5)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--output", help="write the predictions to this file instead of stdout")
    p.add_argument("--classnames", help="text file, one class name per line: the classes to score "
                   "(default: those the model was trained on)")
    p.add_argument("--template", help="prompt template with {} for the class name (default: the one it was trained with)")
    p.add_argument("--logits", choices=LOGITS_CHOICES, default="auto",
                   help="auto: decoupled inference (fused for the training classes, class token otherwise)")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--config-file", help="method YAML, for checkpoints that store no config (the reference's)")
    p.add_argument("--backbone-path", help="CLIP weights file (MODEL.BACKBONE.PATH) instead of the one trained with")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    return p


def _main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    for flag, value in (("--batch-size", args.batch_size), ("--topk", args.topk)):
        if value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    if args.load_epoch is not None and args.load_epoch < 1:
        raise UserError(f"--load-epoch must be a saved epoch (1 or more), got {args.load_epoch}")
    if args.output:
        # Before anything is computed: the predictions must have somewhere to go.
        check_output_file(args.output, "--output")
    files, missing = find_images(args.paths)
    for path in missing:
        print(f"Skipped: {path} does not exist", file=sys.stderr)
    if not files:
        raise UserError(f"no images found in {' '.join(args.paths)} (give image files, or folders that hold "
                        f"{', '.join(IMAGE_EXTENSIONS[:3])} ... files)")
    names = read_classnames(args.classnames) if args.classnames else None
    predictor = load(args.model_dir, args.load_epoch, names, args.template, args.logits,
                     args.config_file, args.backbone_path, args.device)
    print(f"Scoring the {predictor.rule}", file=sys.stderr)
    predictions = predictor.predict(files, args.topk, args.batch_size, skip_unreadable=True, progress=True)
    skipped = [p for p in predictions if p.error is not None]
    text = render(predictions, args.format, predictor, args.topk)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text + "\n")
        except OSError as err:
            # Checked at the start, yet gone since (a full disk, a removed folder): the work is kept.
            print(text)
            raise UserError(f"--output {args.output}: could not write ({err.strerror or err}); "
                            "the predictions are printed above") from err
        print(f"Predictions of {len(predictions) - len(skipped)} images written to {args.output}", file=sys.stderr)
    else:
        print(text)
    for p in skipped:
        print(f"Skipped unreadable image: {p.error}", file=sys.stderr)
    if skipped or missing:
        print(f"{len(skipped) + len(missing)} of {len(files) + len(missing)} paths could not be predicted",
              file=sys.stderr)
        return 1
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit codes: 0 all predicted, 1 some paths could not be (each named), 2 nothing was (one line)."""
    return run_main(_main, argv, error_code=2, errors=user_errors() + (RuntimeError,))


if __name__ == "__main__":
    sys.exit(main())
