"""Preference objectives on sequence log-probabilities: DPO, KTO and reference-free SimPO.

Each takes the summed log-probability of whole replies (every reply token, EOS included,
exactly the tokens the SFT loss counts: see :func:`sequence_logps`) under the policy being
trained and, for DPO and KTO, under the frozen reference (the weights training started
from, computed once per example: :mod:`parlai_dialogft.training.reference`).

* **DPO** (Rafailov et al., 2023), pairs: ``-log sigmoid(beta * ((pc - rc) - (pr - rr)))``,
  TRL's ``loss_type="sigmoid"``.
* **KTO** (Ethayarajh et al., 2024), unpaired replies marked good or bad:
  ``w_d * (1 - sigmoid(beta * (log ratio - z)))`` for good ones and
  ``w_u * (1 - sigmoid(beta * (z - log ratio)))`` for bad ones, where the reference point
  ``z`` is the batch's mean log ratio, clamped at 0 and not differentiated. The paper and
  TRL estimate ``z`` from mismatched (prompt, reply) pairs of the batch, which costs a
  forward pass more per step; the matched estimate is what a CPU can afford.
* **SimPO** (Meng et al., 2024), pairs, no reference: ``-log sigmoid(beta * (pc/|c| - pr/|r|) - gamma)``
  with length-normalised log-probabilities and a target margin ``gamma``.

Rewards are ``beta * (policy - reference)`` (SimPO: ``beta *`` the mean log-probability).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

LOSSES = ("none", "dpo", "kto", "simpo")
NEEDS_REFERENCE = ("dpo", "kto")
PAIRED = ("dpo", "simpo")


def add_pref_args(parser) -> None:
    group = parser.add_argument_group("dialogft_agent: preference training (DPO, KTO, SimPO)")
    group.add_argument(
        "--pref-loss", type=str, default="none", choices=LOSSES,
        help="train on preferences instead of references: dpo and simpo on pairs (chosen, rejected), "
        "kto on replies marked good or bad (-t dialogft_preferences)",
    )
    group.add_argument(
        "--pref-beta", type=float, default=0.1,
        help="how far from the reference the policy may move (DPO, KTO) / reward scale (SimPO)",
    )
    group.add_argument("--pref-simpo-gamma", type=float, default=0.5, help="SimPO's target reward margin")
    group.add_argument("--pref-kto-desirable-weight", type=float, default=1.0, help="KTO weight of good replies")
    group.add_argument("--pref-kto-undesirable-weight", type=float, default=1.0, help="KTO weight of bad replies")
    group.add_argument(
        "--pref-sft-weight", type=float, default=0.0,
        help="add this times the per-token NLL of the chosen (DPO, SimPO) or good (KTO) replies",
    )
    group.add_argument(
        "--pref-ref-cache", type=str, default=None,
        help="file of the reference log-probabilities, computed once before training "
        "(default: MODEL_FILE.pref_ref.json; delete it to recompute)",
    )


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor):
    """Summed log-probability of each row's reply, its number of tokens, and the tokens' own.

    ``logits`` (N, V) are the agent's packed teacher-forced logits: one row per kept
    position of ``labels`` (B, T), ``keep`` being every reply token, EOS included, and no
    padding (the positions the SFT loss counts).
    """
    token = torch.gather(F.log_softmax(logits.float(), dim=-1), 1, labels[keep].unsqueeze(1)).squeeze(1)  # (N,)
    rows = keep.nonzero(as_tuple=True)[0]
    summed = torch.zeros(len(labels), dtype=token.dtype, device=token.device).index_add(0, rows, token)
    return summed, keep.sum(dim=1), token


@dataclass
class PrefOutput:
    losses: torch.Tensor  # (B,) per example
    rewards_chosen: torch.Tensor  # (B,) good replies for KTO (NaN where the reply is bad)
    rewards_rejected: torch.Tensor  # (B,) bad replies for KTO (NaN where the reply is good)


def dpo(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float) -> PrefOutput:
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    return PrefOutput(-F.logsigmoid(chosen - rejected), chosen.detach(), rejected.detach())


def simpo(policy_chosen, policy_rejected, len_chosen, len_rejected, beta: float, gamma: float) -> PrefOutput:
    chosen = beta * policy_chosen / len_chosen.clamp(min=1)
    rejected = beta * policy_rejected / len_rejected.clamp(min=1)
    return PrefOutput(-F.logsigmoid(chosen - rejected - gamma), chosen.detach(), rejected.detach())


def kto(policy, ref, desirable: torch.Tensor, beta: float, desirable_weight: float = 1.0,
        undesirable_weight: float = 1.0, kl: Optional[torch.Tensor] = None) -> PrefOutput:
    ratio = policy - ref
    if kl is None:
        kl = ratio.detach().mean().clamp(min=0)
    good = desirable_weight * (1 - torch.sigmoid(beta * (ratio - kl)))
    bad = undesirable_weight * (1 - torch.sigmoid(beta * (kl - ratio)))
    rewards = beta * ratio.detach()
    nan = torch.full_like(rewards, float("nan"))
    return PrefOutput(torch.where(desirable, good, bad), torch.where(desirable, rewards, nan),
                      torch.where(desirable, nan, rewards))
