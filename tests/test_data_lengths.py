"""Turn lengths of the data report: what the agent's context and reply are, counted per
corpus and language, and the picture docs/data.md shows for choosing the truncation flags."""

from __future__ import annotations

from pathlib import Path


from parlai_dialogft.data.data_report import (
    LENGTH_PNG,
    LENGTHS_BEGIN,
    LENGTHS_END,
    TurnLengths,
    contexts_and_replies,
    length_markdown,
    percentile,
    share_over,
    turn_lengths,
)
from parlai_dialogft.data.length_plots import log_bins, plot_lengths
from tests.support.files import png_is_drawn

DOCS = Path(__file__).resolve().parent.parent / "docs" / "data.md"


def message(text, label, source="sgd", lang="en", done=False):
    return {"text": text, "labels": [label], "source": source, "lang": lang, "episode_done": done}


def words(texts):
    """A simple tokenizer for the specs: one token per whitespace-separated word."""
    return [len(t.split()) for t in texts]


EPISODES = [
    [message("hi there", "hello how can I help"), message("a table please", "for how many", done=True)],
    [message("book a train", "where to", done=True)],
    [message("你 好", "你 好 请 问", source="crosswoz", lang="zh", done=True)],
]


def test_the_context_is_the_episode_so_far_with_gold_replies_up_to_the_text():
    assert list(contexts_and_replies(EPISODES[0])) == [
        ("hi there", "hello how can I help"),
        ("hi there\nhello how can I help\na table please", "for how many"),
    ]


def test_evalmode_serves_the_reply_as_eval_labels():
    episode = [{"text": "hi", "eval_labels": ["hello"], "episode_done": True}]
    assert list(contexts_and_replies(episode)) == [("hi", "hello")]


def test_lengths_are_counted_per_teacher_source_and_language():
    lengths = turn_lengths("dialogft_customer", EPISODES, words)
    assert lengths == {
        ("dialogft_customer", "crosswoz", "zh"): TurnLengths(contexts=[2], replies=[4]),
        # hi there (2) + hello how can I help (5) + a table please (3): the newlines split too.
        ("dialogft_customer", "sgd", "en"): TurnLengths(contexts=[2, 10, 3], replies=[5, 3, 2]),
    }


def test_percentiles_are_nearest_rank_and_shares_count_what_truncation_cuts():
    values = list(range(1, 101))  # 1..100
    assert [percentile(values, q) for q in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert percentile([7], 99) == 7
    assert share_over(values, 64) == 0.36
    assert share_over(values, 100) == 0.0


def test_the_table_has_one_row_per_corpus_and_language():
    lengths = {("dialogft_customer", "sgd", "en"): TurnLengths(contexts=list(range(1, 101)), replies=[10] * 100)}
    assert length_markdown(lengths, 64, 9).splitlines()[2] == (
        "| dialogft_customer | sgd | en | 100 | 50 / 95 / 99 | 36.0% | 10 / 10 / 10 | 100.0% |"
    )


def test_bins_are_whole_tokens_and_reach_past_the_longest():
    edges = log_bins([0, 3, 700])
    assert edges[0] == 1 and edges[-1] == 701
    assert edges == sorted(set(edges)) and all(isinstance(e, int) for e in edges)


def test_the_picture_is_drawn_even_with_empty_replies_and_not_without_data(tmp_path):
    lengths = turn_lengths("dialogft_customer", EPISODES, words)
    lengths[("dialogft_chitchat", "kdconv", "zh")] = TurnLengths(contexts=[300, 40, 900], replies=[0, 0, 0])
    assert plot_lengths(lengths, 256, 64, str(tmp_path / "lengths.png"))
    assert png_is_drawn(tmp_path / "lengths.png")
    assert not plot_lengths({}, 256, 64, str(tmp_path / "none.png"))
    assert not (tmp_path / "none.png").exists()


def test_docs_show_the_length_table_and_the_picture():
    document = DOCS.read_text(encoding="utf-8")
    table = document.split(LENGTHS_BEGIN, 1)[1].split(LENGTHS_END, 1)[0]
    assert table.count("| dialogft_") == 9  # every (teacher, source, lang) of the train splits
    assert f"]({LENGTH_PNG.as_posix()})" in document
    assert png_is_drawn(DOCS.parent / LENGTH_PNG, min_size=(900, 400))


def test_the_table_measures_against_the_agents_truncation_defaults():
    from parlai_dialogft.data.data_report import agent_defaults

    text_truncate, label_truncate, delimiter = agent_defaults()
    assert (text_truncate, label_truncate, delimiter) == (256, 64, "\n")  # what docs/data.md says
    document = DOCS.read_text(encoding="utf-8")
    assert f"| contexts > {text_truncate} |" in document and f"| replies > {label_truncate} |" in document
