"""Evaluate a ParlAI agent on one split and keep a few (context, reference, reply) triples.

``parlai eval_model`` reports metrics but forgets the dialogues; a report needs both from
the same pass, so this is eval_model's loop with the acts kept. The context is rebuilt from
the teacher's acts: at evaluation ParlAI's history holds the teacher's turns and the gold
replies (``--use-reply label``), which is what the model saw before truncation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple


@dataclass
class Sample:
    context: List[str]  # the episode's turns so far, oldest first; the last is the prompt
    reference: str
    reply: str
    call: str = ""  # with --task-db: the call the model wrote before the reply (APICALL: ...)
    result: str = ""  # and the database's answer it read (APIRESP: ...)


@dataclass
class SplitResult:
    split: str
    metrics: Dict[str, float]
    samples: List[Sample] = field(default_factory=list)  # every example seen, in order


def load_generator(model_file: str, task: str, batchsize: int, **overrides):
    """(agent, opt): a saved model as eval_model loads it, with generation on (a model
    trained with --skip-generation true still replies); ``overrides`` replace its own
    options (decoding, datapath, ...)."""
    from parlai.core.agents import create_agent
    from parlai.core.params import ParlaiParser

    opt = ParlaiParser(True, True).parse_kwargs(
        model_file=model_file, task=task, batchsize=batchsize, **{"datatype": "valid", **overrides},
        skip_generation=False,
    )
    return create_agent(opt, requireModelExists=True), opt


def evaluate_split(agent, opt, split: str, max_exs: int, desc: str = "evaluating") -> SplitResult:
    """Run ``agent`` on the first ``max_exs`` examples of ``split`` of ``opt['task']``.

    Generation takes minutes on a CPU: progress goes out as ``desc: split`` (see
    :mod:`parlai_dialogft.utils.progress`).
    """
    from parlai.core.metrics import dict_report
    from parlai.core.worlds import create_task

    from parlai_dialogft.utils.progress import Progress

    task_opt = opt.copy()
    task_opt["datatype"] = split
    world = create_task(task_opt, agent)
    world.reset_metrics()  # the agent is shared between splits
    histories: Dict[Tuple[str, int], List[str]] = {}
    samples: List[Sample] = []
    with Progress(min(max_exs, world.num_examples()), f"{desc}: {split}") as progress:
        while not world.epoch_done() and len(samples) < max_exs:
            world.parley()
            found = _collect(world.get_acts(), histories)
            progress.update(min(len(found), max_exs - len(samples)))  # a last batch may run past
            samples.extend(found)
    return SplitResult(split, dict_report(world.report()), samples[:max_exs])


def _collect(acts, histories) -> List[Sample]:
    """Samples of one parley. A batch world's acts are lists, one entry per batch slot."""
    teacher_acts, replies = acts[0], acts[1]
    if not isinstance(teacher_acts, (list, tuple)):
        teacher_acts, replies = [teacher_acts], [replies]
    found = []
    for slot, (question, answer) in enumerate(zip(teacher_acts, replies)):
        labels = (question or {}).get("eval_labels") or (question or {}).get("labels")
        if not labels:
            continue  # an empty act: this slot's share of the split is used up
        # Slots of one batch run separate episodes; teachers of a multitask run, too.
        key = (str(question.get("id")), slot)
        turns = histories.setdefault(key, [])
        turns.append(question.get("text", ""))
        answer = answer or {}
        found.append(Sample(list(turns), labels[0], answer.get("text", ""),
                            answer.get("tod_call", ""), answer.get("tod_result", "")))
        turns.append(labels[0])
        if question.get("episode_done"):
            histories.pop(key)
    return found


def spread(samples: List[Sample], k: int) -> List[Sample]:
    """``k`` samples evenly spaced over the list: consecutive examples share a dialogue."""
    if k <= 0 or not samples:
        return []
    if k >= len(samples):
        return list(samples)
    step = (len(samples) - 1) / (k - 1) if k > 1 else 0
    return [samples[round(i * step)] for i in range(k)]
