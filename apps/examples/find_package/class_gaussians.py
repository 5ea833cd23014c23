"""Scripts and saves, with PyTorch, a class-conditional network with an exact answer, for
guided_torchscript.cpp: the data of class y is N(mu_y, I) in 2-D, so under the linear VP
schedule (beta0 0.1, beta1 20) the exact noise prediction is eps = sigma (x - alpha mu_y)
(alpha^2 + sigma^2 = 1). Label 3 is the null label (mean 0), the unconditional input of
classifier-free guidance. Usage: class_gaussians.py OUT.pt
"""
import json
import sys

import torch


class ClassGaussians(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("means", torch.tensor([[2.0, 0.0], [-1.0, 1.5], [0.5, -2.0], [0.0, 0.0]],
                                                   dtype=torch.float64))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        log_alpha_bar = -(0.1 * t + 0.5 * (20.0 - 0.1) * t * t)
        alpha = torch.exp(0.5 * log_alpha_bar)[:, None]
        sigma = torch.sqrt(-torch.expm1(log_alpha_bar))[:, None]
        return sigma * (x - alpha * self.means.to(x.dtype)[y])


inputs = [{"name": "y", "type": "int64", "shape": [], "classes": 3, "null": 3}]
torch.jit.script(ClassGaussians()).save(
    sys.argv[1], _extra_files={"diffsde.json": json.dumps({"shape": [2], "prediction": "eps", "inputs": inputs})})
