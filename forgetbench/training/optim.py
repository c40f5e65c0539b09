"""AdamW for weights kept in bfloat16, with stochastic rounding: how a 7B model fits one 80 GB GPU.

Full fine-tuning of a 7B model with fp32 weights and AdamW needs 16 bytes a parameter (weights,
gradients, two moments: 113 GB at 7.1B). Keeping all four in bf16 halves that (8 bytes a
parameter, 57 GB), but plain bf16 AdamW loses the fine-tuning: an update of lr 2e-5 is below
half a bf16 step of the weight it changes (8 significant bits, a relative step of 2^-8), so
rounding to nearest drops it, and the second moment stops decaying for the same reason.
Rounding stochastically instead (up with probability equal to the remainder) makes every
stored value exact in expectation (Zamirai et al. 2020, "Revisiting BFloat16 Training").

Written here because torch's AdamW has no stochastic rounding; torchao and bitsandbytes ship
such optimizers, but they are not among our dependencies, and the GPU machines are offline.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

CHUNK = 1 << 24  # elements updated at a time: bounds the float32 temporaries to ~0.3 GB


def stochastic_round_to_bf16(values: torch.Tensor) -> torch.Tensor:
    """Round float32 ``values`` to bfloat16, up or down at random so that E[result] = values.

    bf16 is the upper 16 bits of a float32: adding uniform noise below bit 16 and truncating
    rounds the magnitude up with probability equal to the dropped fraction.
    """
    bits = values.float().view(torch.int32)
    noise = torch.randint(0, 1 << 16, bits.shape, dtype=torch.int32, device=bits.device)
    return ((bits + noise) & -65536).view(torch.float32).to(torch.bfloat16)  # -65536: mask 0xFFFF0000


def _store(target: torch.Tensor, values: torch.Tensor) -> None:
    target.copy_(stochastic_round_to_bf16(values) if target.dtype == torch.bfloat16 else values)


class StochasticRoundingAdamW(torch.optim.Optimizer):
    """AdamW (decoupled weight decay, bias-corrected moments) whose moments live in each
    parameter's dtype; the update is computed in float32, and stored back into bf16 weights and
    moments with stochastic rounding. On float32 parameters it is exactly AdamW.

    Args:
        params: parameters or parameter groups.
        lr, betas, eps, weight_decay: as ``torch.optim.AdamW``.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, group)
        return loss

    def _update(self, param: torch.Tensor, group: dict) -> None:
        state = self.state[param]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.contiguous_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.contiguous_format)
        state["step"] += 1
        step = state["step"]
        beta1, beta2 = group["betas"]
        lr, eps, decay = group["lr"], group["eps"], group["weight_decay"]
        bias1, bias2 = 1 - beta1**step, 1 - beta2**step
        # under FSDP the tensors are DTensors: the update is elementwise, so each rank updates its shard
        tensors = [_local(t) for t in (param, param.grad, state["exp_avg"], state["exp_avg_sq"])]
        # chunks of the flattened tensors: a 1B-parameter embedding needs no 4 GB temporaries
        for weight, grad, exp_avg, exp_avg_sq in zip(*(t.view(-1).split(CHUNK) for t in tensors)):
            grad32 = grad.float()
            mean = exp_avg.float().mul_(beta1).add_(grad32, alpha=1 - beta1)
            square = exp_avg_sq.float().mul_(beta2).addcmul_(grad32, grad32, value=1 - beta2)
            new_weight = weight.float().mul_(1 - lr * decay)
            new_weight.addcdiv_(mean, square.div(bias2).sqrt_().add_(eps), value=-lr / bias1)
            _store(exp_avg, mean)
            _store(exp_avg_sq, square)
            _store(weight, new_weight)


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """This rank's shard of an FSDP DTensor (sharing its storage), or the tensor itself."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor
