"""Scripts and saves, with PyTorch, a model whose forward is the exact eps of Gaussian
data N(mu, diag(sd^2)) under the vp_linear schedule (beta0 0.1, beta1 20); the C++
test loads it. Usage: script_gaussian_model.py OUT.pt"""
import json
import sys

import torch


class GaussianEps(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mu", torch.tensor([[1.0, -0.5, 2.0]], dtype=torch.float64))
        self.register_buffer("sd", torch.tensor([[0.5, 1.5, 0.8]], dtype=torch.float64))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        lab = -(0.1 * t + 0.5 * 19.9 * t * t)
        a2 = torch.exp(lab).unsqueeze(1)
        s2 = -torch.expm1(lab).unsqueeze(1)
        return torch.sqrt(s2) * (x - torch.sqrt(a2) * self.mu) / (a2 * self.sd * self.sd + s2)


module = torch.jit.script(GaussianEps())
module.save(sys.argv[1], _extra_files={"diffsde.json": json.dumps({"shape": [3], "prediction": "eps"})})
