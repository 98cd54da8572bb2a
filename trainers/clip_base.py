"""What every trainer on a frozen CLIP shares: loading CLIP once, the class prompts, batches."""
import hashlib
from typing import Any, Callable, Dict, List, Tuple

import torch

from mmrl.dassl.engine import TrainerX
from mmrl.dassl.utils import distributed as dist
from mmrl.model.clip_loader import MINI_BACKBONE, check_input_size, class_prompts, load_clip


# Images per forward pass at evaluation. Test batches are large (250 in the method configs) and
# each image's logits are independent of the others', so a batch runs in chunks: the same
# predictions, with the activation peak of 8 images instead of 250. At 8 a 1000-class ViT-B/16 run's
# final test no longer adds to its peak (it did at 32), and it evaluates as fast on CPU.
EVAL_CHUNK = 8

# Small tensors that differ between any two CLIPs, even of the same widths (ViT-B/16 and ViT-B/32,
# two random minis): their hash tells a checkpoint which backbone it was trained on.
_FINGERPRINT_TENSORS = ("visual.conv1.weight", "visual.proj", "text_projection", "positional_embedding")


def backbone_fingerprint(clip_model) -> str:
    """SHA-1 of a few of CLIP's tensors, taken in fp16 so that fp16 and fp32 loads agree."""
    state = clip_model.state_dict()
    digest = hashlib.sha1()
    for key in _FINGERPRINT_TENSORS:
        digest.update(state[key].detach().to("cpu", torch.float16).contiguous().numpy().tobytes())
    return digest.hexdigest()


class CLIPTrainer(TrainerX):
    """Base of the CLIP trainers (not registered itself)."""

    @classmethod
    def add_config(cls, cfg) -> None:
        super().add_config(cfg)
        # A local CLIP weights file; empty means the named model from CLIP's cache.
        cfg.MODEL.BACKBONE.PATH = ""

    @staticmethod
    def in_chunks(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        """``fn`` over ``images`` [B, ...] in chunks of EVAL_CHUNK, outputs concatenated on dim 0."""
        return torch.cat([fn(chunk) for chunk in images.split(EVAL_CHUNK)])

    def load_clip(self):
        cfg = self.cfg
        # Rank 0 downloads or writes the weights file first; the others then read it.
        with dist.main_process_first():
            clip_model = load_clip(
                cfg.MODEL.BACKBONE.NAME,
                cfg.MODEL.BACKBONE.PATH,
                device=self.device,
                fp16=self.precision == "fp16",
            )
        check_input_size(clip_model, cfg.INPUT.SIZE, cfg.MODEL.BACKBONE.NAME)
        self.backbone_sha1 = backbone_fingerprint(clip_model)
        return clip_model

    def backbone_record(self) -> Dict[str, Any]:
        record = super().backbone_record()
        if getattr(self, "backbone_sha1", None):
            record["backbone_sha1"] = self.backbone_sha1
        return record

    @property
    def prompt_template(self) -> str:
        """The dataset's own prompt template."""
        return self.dm.dataset.template

    def class_prompts(self) -> List[str]:
        return class_prompts(self.prompt_template, self.dm.dataset.classnames)

    def parse_batch_train(self, batch) -> Tuple[torch.Tensor, torch.Tensor]:
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def test(self, split=None):
        result = super().test(split)
        if self.cfg.MODEL.BACKBONE.NAME == MINI_BACKBONE:
            print(f"Note: the {MINI_BACKBONE} CLIP is randomly initialised; "
                  "these accuracies say nothing about real CLIP.")
        return result
