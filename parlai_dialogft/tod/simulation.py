"""A simulated user talks to the system, the database answers, and ParlAI scores each goal.

ParlAI's model-to-model world (``parlai.core.tod.tod_world``) runs the dialogue: a shipped
goal grounds the user (``GOAL: api_name = find_hotel ; area = north | ...``), the schemas
ground the system, then each round is the user's turn, the system's call, the database's
answer (:class:`~.api_agent.DatabaseApiAgent`) and the system's reply, until the user says
``[DONE]`` or ``--max-turns`` runs out. The user is a model trained on
``-t dialogft_customer:user_simulator`` (ParlAI's ``TodUserSimulatorTeacher``: the goal, then
each system turn -> the next user turn), the system one trained on ``-t dialogft_customer:system``.
From the shell (``python -m``: ``parlai tod_world_script`` does not take the grounding agents'
and the database's own flags, as ParlAI's help says)::

    parlai train_model -t dialogft_customer:user_simulator:sources=multiwoz -m dialogft_agent \\
        --hf-model zoo:dialogft/customer_t5 -lr 1e-4 --text-truncate 512 -mf user/model
    parlai train_model -t dialogft_customer:system:sources=multiwoz -m dialogft_agent \\
        --hf-model zoo:dialogft/customer_t5 -lr 1e-4 --text-truncate 512 -mf system/model
    python -m parlai.scripts.tod_world_script \\
        --user-model-file user/model --system-model-file system/model \\
        --api-resp-model parlai_dialogft.tod.api_agent:DatabaseApiAgent --tod-database multiwoz \\
        --goal-grounding-model parlai_dialogft.tasks.dialogft_customer.agents:GoalAgent \\
        --api-schema-grounding-model parlai_dialogft.tasks.dialogft_customer.agents:ApiSchemaAgent \\
        --customer-lang all --customer-sources multiwoz -dt test \\
        --n-shot 100 --episodes-randomization-seed 0 --num-episodes 100 --max-turns 20 \\
        --report-filename report --world-logs dialogues

``--n-shot N --episodes-randomization-seed S`` takes N dialogues' goals spread over the split;
``SingleGoalAgent`` and ``SingleApiSchemaAgent`` make each goal call an episode of its own.
The report's metrics are ParlAI's world metrics, averaged over the episodes and, under
``tod_metrics``, per episode with its goal:

* ``synthetic_task_success``: the system's calls hit every goal call exactly (ParlAI's
  ``goals_hit_helper``); ``api_call_attempts``: calls per dialogue;
* ``rounds_count_all_conversations``: user turns per dialogue (``[DONE]`` included);
  ``done_seen``: the user said ``[DONE]``; ``round_count_done_seen``: user turns in the dialogues where it did.

:func:`simulate` runs the same script from Python with the same options, and adds ParlAI's
goal metrics of its extended set (:class:`GoalsHitHandler`): ``all_goals_hit`` (the same as
``synthetic_task_success``), ``all_goals_hit_turn_count`` (how many calls it took to hit them
all; 0 when they never were) and ``all_goals_fractional_hit``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from parlai.core.message import Message
from parlai.core.metrics import Metric
from parlai.core.tod.world_metrics_handlers import TodMetricsHandler, goals_hit_helper
from parlai.scripts.tod_world_script import TodWorldScript

AGENTS = "parlai_dialogft.tasks.dialogft_customer.agents"
API_AGENT = "parlai_dialogft.tod.api_agent:DatabaseApiAgent"


class GoalsHitHandler(TodMetricsHandler):
    """ParlAI's ``all_goals_hit`` family (``LegacyGoalApiCallInteractionsMetricsHandler`` in
    ``projects/tod_simulator``), without its experimental required-slot metrics."""

    def episode_reset(self):
        self.api_turns: List[Dict] = []

    def handle_api_call(self, message: Message, api_call: Dict) -> None:
        if api_call:
            self.api_turns.append(api_call)

    def get_episode_metrics(self) -> Dict[str, Metric]:
        hit, calls_to_hit, fraction = goals_hit_helper(self.goals, self.api_turns)
        return {"all_goals_hit": hit, "all_goals_hit_turn_count": calls_to_hit, "all_goals_fractional_hit": fraction}


class _SimulationScript(TodWorldScript):
    """``tod_world_script`` with :class:`GoalsHitHandler` beside ParlAI's default handlers."""

    def _setup_world(self):
        world = super()._setup_world()
        for metrics in world.batch_tod_world_metrics:
            metrics.handlers.append(GoalsHitHandler())
        return world


def simulation_flags(
    system_model_file: str,
    user_model_file: str,
    database: str = "multiwoz",
    *,
    sources: Optional[str] = None,
    datatype: str = "test",
    episodes: int = 20,
    seed: int = 0,
    single_goal: bool = False,
    max_turns: int = 20,
    **flags: Any,
) -> Dict[str, Any]:
    """The options of ``tod_world_script`` that the module docstring's command gives.

    ``sources`` are the dialogues whose goals ground the user (the database's own by default);
    ``flags`` are any other options of the script or its agents, e.g. ``batchsize``,
    ``world_logs``, ``datapath``, or ``system_model`` (with ``system_model_file=""``) for an
    agent class instead of a model file.
    """
    single = "Single" if single_goal else ""
    opt = dict(
        system_model_file=system_model_file,
        user_model_file=user_model_file,
        api_resp_model=API_AGENT,
        tod_database=database,
        goal_grounding_model=f"{AGENTS}:{single}GoalAgent",
        api_schema_grounding_model=f"{AGENTS}:{single}ApiSchemaAgent",
        customer_lang="all",
        customer_sources=sources or database,
        datatype=datatype,
        n_shot=episodes,
        episodes_randomization_seed=seed,
        num_episodes=episodes,
        max_turns=max_turns,
    )
    opt.update(flags)
    return opt


def simulate(system_model_file: str, user_model_file: str, database: str = "multiwoz", **options: Any) -> Dict[str, Any]:
    """Run ``episodes`` simulated dialogues (options of :func:`simulation_flags`); return the
    report: each metric averaged over the episodes, and ``tod_metrics``, one dict per episode
    (its metrics and its ``goal`` grounding message)."""
    return _SimulationScript.main(**simulation_flags(system_model_file, user_model_file, database, **options))
