"""Preference objectives on sequence log-probabilities: DPO, IPO, KTO and reference-free SimPO.

Each takes the summed log-probability of whole replies (every reply token, EOS included,
exactly the tokens the SFT loss counts: see :func:`sequence_logps`) under the policy being
trained and, for DPO and KTO, under the frozen reference (the weights training started
from, computed once per example: :mod:`parlai_dialogft.training.reference`).

* **DPO** (Rafailov et al., 2023), pairs: ``-log sigmoid(beta * ((pc - rc) - (pr - rr)))``,
  TRL's ``loss_type="sigmoid"``.
* **IPO** (Azar et al., 2023), pairs: ``((pc - rc)/|c| - (pr - rr)/|r| - 1/(2 beta))^2``, TRL's
  ``loss_type="ipo"``: a squared loss towards a fixed margin, so deterministic preferences
  (every pair won by the same side) cannot drive the margin, and the policy, off to infinity
  as DPO's sigmoid lets them. Like TRL, the log ratios are per token.
* **KTO** (Ethayarajh et al., 2024), unpaired replies marked good or bad:
  ``w_d * (1 - sigmoid(beta * (log ratio - z)))`` for good ones and
  ``w_u * (1 - sigmoid(beta * (z - log ratio)))`` for bad ones, where the reference point
  ``z`` is the batch's mean log ratio, clamped at 0 and not differentiated. The paper and
  TRL estimate ``z`` from mismatched (prompt, reply) pairs of the batch, which costs a
  forward pass more per step; the matched estimate is what a CPU can afford.
* **SimPO** (Meng et al., 2024), pairs, no reference: ``-log sigmoid(beta * (pc/|c| - pr/|r|) - gamma)``
  with length-normalised log-probabilities and a target margin ``gamma``.

Rewards are ``beta * (policy - reference)`` (SimPO: ``beta *`` the mean log-probability;
IPO: the per-token log ratio, unscaled).

``--pref-sft-weight w`` adds ``w`` times the chosen replies' per-token NLL (RPO, Pang et al.,
2024; TRL's ``loss_type=["sigmoid", "sft"], loss_weights=[1, w]``, formerly ``rpo_alpha``):
with DPO alone the chosen reply's own likelihood falls when chosen and rejected share most
tokens ("likelihood displacement", Razin et al., 2024), and the NLL term is what keeps it. It
is on by default for DPO and IPO (``w = 1``, RPO's setting), off for the others.

``--pref-loss unlikelihood`` is MLE on the chosen reply plus a penalty on the rejected one's
overused and repeated n-grams: :mod:`parlai_dialogft.training.unlikelihood`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from parlai_dialogft.training import selection, unlikelihood

LOSSES = ("none", "dpo", "ipo", "kto", "simpo", "unlikelihood")
NEEDS_REFERENCE = ("dpo", "ipo", "kto")
#: Losses that read a rejected reply; unlikelihood reads one where an example has it.
PAIRED = ("dpo", "ipo", "simpo", "unlikelihood")
#: The NLL weight of the chosen replies when --pref-sft-weight is not given (RPO's alpha = 1).
DEFAULT_SFT_WEIGHT = {"dpo": 1.0, "ipo": 1.0}


def add_pref_args(parser) -> None:
    group = parser.add_argument_group("dialogft_agent: preference training (DPO, IPO, KTO, SimPO, unlikelihood)")
    group.add_argument(
        "--pref-loss", type=str, default="none", choices=LOSSES,
        help="train on preferences instead of references: dpo, ipo and simpo on pairs (chosen, rejected), "
        "kto on replies marked good or bad (-t dialogft_preferences); unlikelihood: MLE on the chosen reply, "
        "a penalty on the rejected one's overused and repeated n-grams. In a batch, examples without a "
        "rejected reply (or, for kto, a mark) train on the plain reference loss",
    )
    group.add_argument(
        "--pref-beta", type=float, default=0.1,
        help="how far from the reference the policy may move (DPO, IPO: its tau, the target margin being "
        "1/(2 tau); KTO) / reward scale (SimPO)",
    )
    group.add_argument("--pref-simpo-gamma", type=float, default=0.5, help="SimPO's target reward margin")
    group.add_argument("--pref-kto-desirable-weight", type=float, default=1.0, help="KTO weight of good replies")
    group.add_argument("--pref-kto-undesirable-weight", type=float, default=1.0, help="KTO weight of bad replies")
    group.add_argument(
        "--pref-sft-weight", type=float, default=None,
        help="add this times the per-token NLL of the chosen (DPO, IPO, SimPO) or good (KTO) replies, which "
        "keeps their likelihood from falling (RPO; TRL's sft loss weight) (default: 1 for dpo and ipo, else 0)",
    )
    group.add_argument(
        "--pref-ref-cache", type=str, default=None,
        help="file of the reference log-probabilities, computed once before training "
        "(default: MODEL_FILE.pref_ref.json; delete it to recompute)",
    )
    unlikelihood.add_args(group)
    selection.add_args(group)


def sft_weight(opt) -> float:
    """--pref-sft-weight, or its default for the loss (1 for DPO and IPO: the recipe)."""
    weight = opt.get("pref_sft_weight")
    if weight is None:
        return DEFAULT_SFT_WEIGHT.get(opt.get("pref_loss") or "none", 0.0)
    return float(weight)


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


def ipo(policy_chosen, policy_rejected, ref_chosen, ref_rejected, len_chosen, len_rejected,
        beta: float) -> PrefOutput:
    chosen = (policy_chosen - ref_chosen) / len_chosen.clamp(min=1)
    rejected = (policy_rejected - ref_rejected) / len_rejected.clamp(min=1)
    return PrefOutput((chosen - rejected - 1 / (2 * beta)) ** 2, chosen.detach(), rejected.detach())


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
