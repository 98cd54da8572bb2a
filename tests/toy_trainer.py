"""A tiny TrainerX for engine tests: a linear classifier on 24 in-memory points."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from mmrl.dassl.engine import TrainerX
from mmrl.dassl.metrics import compute_accuracy
from mmrl.dassl.optim import build_lr_scheduler, build_optimizer


class ToyTrainer(TrainerX):
    """Batches of 4, shuffled; a val loader of 8 points unless ``with_val`` is False."""

    with_val = True

    def build_data_loader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(24, 4, generator=g)
        y = (x[:, 0] > 0).long()
        data = [{"img": x[i], "label": y[i], "domain": 0} for i in range(24)]
        self.train_loader_x = DataLoader(data, batch_size=4, shuffle=True)
        self.train_loader_u = None
        self.val_loader = DataLoader(data[:8], batch_size=8) if self.with_val else None
        self.test_loader = DataLoader(data, batch_size=8)
        self.num_classes = 2
        self.num_source_domains = 0
        self.lab2cname = {0: "neg", 1: "pos"}

    def build_model(self):
        self.model = nn.Linear(4, 2)
        self.optim = build_optimizer(self.model, self.cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, self.cfg.OPTIM)
        self.register_model("model", self.model, self.optim, self.sched)

    def forward_backward(self, batch):
        x, y, _ = self.parse_batch_train(batch)
        with self.autocast():
            out = self.model(x)
            loss = F.cross_entropy(out, y)
        self.model_backward_and_update(loss)
        if self.batch_idx + 1 == self.num_batches:
            self.update_lr()
        return {"loss": loss.item(), "acc": compute_accuracy(out, y)[0].item()}
