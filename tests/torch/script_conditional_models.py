"""Scripts and saves, with PyTorch, conditional networks whose outputs are exactly
checkable per row; the C++ tests and the command-line test load them.
Usage: script_conditional_models.py OUT_DIR

  label.pt  forward(x, t, y): eps = x * 0.5 + y * 0.25 + t, y an int64 label per row
            (x of shape (B, 3)); its diffsde.json declares y (10 classes, null label 10).
  emb.pt    forward(x, t, emb, scale: Optional[Tensor] = None): eps = x * 0.5 + emb * 0.25
            + t, times scale when given (emb and scale (B, 3)); no inputs in its metadata
            (the config declares them).
"""
import json
import os
import sys
from typing import Optional

import torch


class LabelEps(torch.nn.Module):
    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x * 0.5 + y.to(x.dtype)[:, None] * 0.25 + t[:, None]


class EmbeddingEps(torch.nn.Module):
    def forward(self, x: torch.Tensor, t: torch.Tensor, emb: torch.Tensor,
                scale: Optional[torch.Tensor] = None) -> torch.Tensor:
        out = x * 0.5 + emb * 0.25 + t[:, None]
        if scale is not None:
            out = out * scale
        return out


out_dir = sys.argv[1]
label_inputs = [{"name": "y", "type": "int64", "shape": [], "classes": 10, "null": 10}]
torch.jit.script(LabelEps()).save(
    os.path.join(out_dir, "label.pt"),
    _extra_files={"diffsde.json": json.dumps({"shape": [3], "prediction": "eps", "inputs": label_inputs})})
torch.jit.script(EmbeddingEps()).save(
    os.path.join(out_dir, "emb.pt"), _extra_files={"diffsde.json": json.dumps({"shape": [3]})})
