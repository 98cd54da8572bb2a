"""Zero-shot CLIP: the "CLIP" row of every table, evaluated through the same protocols."""
from mmrl.dassl.engine import TRAINER_REGISTRY
from mmrl.model.zeroshot import ZeroShotCLIP

from .clip_base import CLIPTrainer


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(CLIPTrainer):
    table_rank = 0  # column of the comparison tables: the papers' order, baselines first
    def build_model(self):
        clip_model = self.load_clip()
        prompts = self.class_prompts()
        print(f"Prompts (template {self.prompt_template!r}): {prompts[:3]}{' ...' if len(prompts) > 3 else ''}")
        self.model = ZeroShotCLIP(clip_model, prompts).to(self.device)

    def model_inference(self, image):
        return self.in_chunks(self.model, image)

    def result_extra(self):
        return {"logits": "zero_shot"}

    def load_model(self, directory, epoch=None):
        if directory:
            print(f"ZeroshotCLIP has no trained weights: --model-dir {directory} is ignored")

    def train(self, *args, **kwargs):
        # Nothing trains in zero-shot CLIP: a training run is its evaluation.
        print("ZeroshotCLIP has no trainable parameters: evaluating instead of training")
        return self.test()
