"""The loop closed on loopback: users pick between two drafts of a served model, the log
becomes a preference file, `parlai train_model` trains on it, and the new model is served."""

from __future__ import annotations

import json

from tests.support.agents import train_briefly
from tests.support.files import read_jsonl
from tests.support.models import TEXTS
from tests.support.serving import chat, contents, feedback, log_preferences, serving, serving_hf_model

PROMPTS = [[{"role": "user", "content": text}] for text in dict.fromkeys(TEXTS)]


def test_served_choices_train_a_model_that_answers_with_the_chosen_drafts(context_models, tmp_path):
    picked = {}
    with serving_hf_model(context_models["gpt2"], str(tmp_path / "log.db"), str(tmp_path / "data")) as server:
        before = {p[0]["content"]: contents(chat(server.url, p))[0] for p in PROMPTS}
        for i, prompt in enumerate(PROMPTS):
            # Two sampled drafts, seeded: the same ones whichever tests ran before.
            drafts = chat(server.url, prompt, n=2, temperature=1.5, seed=i)
            if len(drafts["choices"]) == 2:
                feedback(server.url, id=drafts["id"], choice=1)  # users prefer the second draft
                picked[prompt[0]["content"]] = contents(drafts)[1]
    assert len(picked) >= 4

    status, output = log_preferences(str(tmp_path / "log.db"), str(tmp_path / "prefs"))
    assert status == 0, output
    assert len(read_jsonl(tmp_path / "prefs" / "paired.jsonl")) == len(picked)

    mf = tmp_path / "dpo" / "model"
    valid, _ = train_briefly(
        context_models["gpt2"], str(mf), str(tmp_path / "data"), steps=20, task="dialogft_preferences",
        pref_datapath=str(tmp_path / "prefs" / "paired.jsonl"), pref_loss="dpo", pref_beta=0.5,
        learningrate=3e-4, batchsize=len(picked), skip_generation=True, log_every_n_steps=1,
    )
    first = json.loads((tmp_path / "dpo" / "model.trainstats").read_text())["train_reports"][0]
    # The file is every split: validation scores the served users' pairs after training.
    assert valid["reward_acc"] == 1.0 and valid["pref_loss"] < first["pref_loss"] - 0.1

    with serving(str(mf), log_db=str(tmp_path / "log2.db")) as server:
        after = {p[0]["content"]: contents(chat(server.url, p))[0] for p in PROMPTS}
    assert all(after.values())
    assert after != before  # the trained weights answer, not the old ones


def test_fast_acute_pairs_the_models_before_and_after_preference_training(tiny_models, tmp_path):
    """The next crowd round: a zoo model and a model trained with --pref-loss (whose saved
    opt still names it: a self-chat must not start scoring a reference) chat with
    themselves, and their chats are paired for ACUTE-Eval."""
    import pathlib

    from parlai_dialogft.human_eval.fast_acute import FastAcuteOptions, run

    fixtures = pathlib.Path(__file__).parent / "fixtures" / "preferences"
    after = tmp_path / "dpo" / "model"
    train_briefly(tiny_models["t5"], str(after), str(tmp_path / "data"), steps=2, task="dialogft_preferences",
                  pref_datapath=str(fixtures / "paired_conversational.jsonl"), pref_loss="dpo", skip_generation=True)
    result = run(FastAcuteOptions(
        model_files=f"before=zoo:dialogft/customer_t5,after={after}", out=str(tmp_path / "round"),
        task="dialogft_customer", num_chats=2, turns=2, datapath=str(tmp_path / "data"),
    ))
    pairings = read_jsonl(tmp_path / "round" / "pairings.jsonl")
    models = {tuple(sorted(p["speakers_to_eval"])) for p in pairings if not p["is_onboarding"]}
    assert models == {("after", "before")}, result
