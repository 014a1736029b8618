"""Representation losses on a batch of embeddings: uniformity and alignment (GenD), SupCon (RINE).

All take ``z`` [B, D] (L2-normalised by the caller where the method says so) and return a scalar.
Written from the papers' definitions: Wang & Isola, ICML 2020 (uniformity, alignment) with GenD's
label-aware alignment; Khosla et al., NeurIPS 2020 (supervised contrastive loss, L_out form).
"""

from __future__ import annotations

import torch
from torch import Tensor


def uniformity(z: Tensor, t: float = 2.0, floor: float = 1e-6) -> Tensor:
    """log of the mean over unordered pairs i < j of exp(−t·‖zᵢ − zⱼ‖²); the mean is clamped at ``floor``.

    0 for a batch of one (no pair), so it never produces NaN.
    """
    if z.shape[0] < 2:
        return z.sum() * 0
    sq = torch.pdist(z.float(), p=2).pow(2)
    return torch.log(torch.exp(-t * sq).mean().clamp_min(floor))


def alignment(z: Tensor, labels: Tensor, alpha: float = 2.0) -> Tensor:
    """Mean over same-label pairs i < j of ‖zᵢ − zⱼ‖^alpha; 0 when the batch has no such pair."""
    n = z.shape[0]
    i, j = torch.triu_indices(n, n, offset=1, device=z.device)
    same = labels[i] == labels[j]
    if not bool(same.any()):
        return z.sum() * 0
    # pdist lists the pairs i < j in triu_indices' order, so the selection reads each distance once. Reading
    # z[i] - z[j] instead accumulates each row's gradient over its pairs in a thread-dependent order on CPU
    # (two runs at one seed diverged with 2 threads); index_select's gradient (index_add_) is nondeterministic
    # on CUDA.
    dist = torch.masked_select(torch.pdist(z.float(), p=2), same)
    return dist.pow(alpha).mean()


def supcon(z: Tensor, labels: Tensor, temperature: float = 0.07, base_temperature: float = 0.07) -> Tensor:
    """Supervised contrastive loss with one view per image, labels as classes (L_out of Khosla et al.).

    For anchor i with positives P(i) (other images of its label) and all others A(i):
    −(τ/τ_base)/|P(i)| · Σ_{p∈P(i)} log(exp(zᵢ·z_p/τ) / Σ_{a∈A(i)} exp(zᵢ·z_a/τ)), averaged over all
    anchors, an anchor without a positive counting 0: the paper leaves that case undefined, and the loss
    RINE's released models were trained with averages this way. 0 when no anchor has a positive (also
    for a batch of one, where that loss gives NaN).
    """
    n = z.shape[0]
    logits = (z.float() @ z.float().t()) / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    counts = positives.sum(1)
    has = counts > 0
    if not bool(has.any()):
        return z.sum() * 0
    mean_log_prob = log_prob.masked_fill(~positives, 0.0).sum(1)[has] / counts[has]
    return -(temperature / base_temperature) * mean_log_prob.sum() / n
