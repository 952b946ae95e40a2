"""The dialogft mutators: registered with ParlAI, composable with every teacher, deterministic,
noise on the input only, and a counterfactual copy that swaps text and labels alike."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from parlai.core.message import Message

from parlai_dialogft.mutators.counterfactual import CounterfactualMutator, GenderSwapper
from parlai_dialogft.mutators.denoise import DenoiseMutator, corrupt
from parlai_dialogft.mutators.noise import NOISE_MUTATORS, noise_mutator

BIN = Path(sys.executable).parent
ALL_NOISE = "+".join(NOISE_MUTATORS)
EN = "Hello, I would like to book a table for two at seven tonight. Thanks!"
ZH = "你好，我想订一张明天去北京的火车票，这个问题请帮我看看。"


def parlai(args, cwd):
    """The ``parlai`` command in a fresh process with only PATH and HOME, like a user's shell."""
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(cwd), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        ["parlai", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600
    )


def shown(stdout: str):
    """(texts, labels) as display_data prints them: labels are the indented lines."""
    lines = [l for l in stdout.splitlines() if l.strip() and "NEW EPISODE" not in l and not l.startswith("20")]
    texts = [l for l in lines if not l.startswith("   ")]
    labels = [l.strip() for l in lines if l.startswith("   ")]
    return texts, labels


@pytest.fixture(scope="module")
def user_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "pairs.csv"
    path.write_text(
        "text,response\n"
        "My husband wants a table for two tonight.,Sure. What time would he like?\n"
        "我想订一张明天去北京的火车票。,好的，请问您几点出发？\n"
        "Can you find me a cheap hotel in the centre?,There are three cheap hotels there.\n",
        encoding="utf-8",
    )
    return path


TEACHERS = {
    "dialogft_customer": [],
    "dialogft_customer:lang=zh": [],
    "dialogft_chitchat": [],
    "dialogft_qa": [],
    "dialogft_files": ["--files-datapath", "{csv}"],
}


def test_every_mutator_is_registered_in_a_fresh_process(tmp_path):
    names = ALL_NOISE + "+dialogft_counterfactual+dialogft_denoise"
    code = (
        "import json; from parlai.core.mutators import Mutator; "
        f"print(json.dumps([m.__name__ for m in Mutator.load_mutator_types({names!r})]))"
    )
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([str(BIN / "python"), "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [
        "TyposMutator", "CasePunctMutator", "WidthMutator", "ScriptVariantMutator", "FillersMutator",
        "CounterfactualMutator", "DenoiseMutator",
    ]


@pytest.mark.slow  # two fresh parlai processes per teacher, each loading its corpora
@pytest.mark.parametrize("task", list(TEACHERS))
def test_noise_composes_with_every_teacher_and_leaves_labels_alone(task, tmp_path, user_csv):
    extra = [a.format(csv=user_csv) for a in TEACHERS[task]]
    common = ["display_data", "-t", task, "-n", "4", "--datapath", str(tmp_path), *extra]
    clean = parlai(common, tmp_path)
    noisy = parlai(common + ["--mutators", ALL_NOISE, "--noise-rate", "0.5"], tmp_path)
    assert clean.returncode == 0, clean.stderr[-2000:]
    assert noisy.returncode == 0, noisy.stderr[-2000:]
    clean_texts, clean_labels = shown(clean.stdout)
    noisy_texts, noisy_labels = shown(noisy.stdout)
    assert clean_labels and noisy_labels == clean_labels
    assert len(noisy_texts) == len(clean_texts)
    assert all(n != c for n, c in zip(noisy_texts, clean_texts))


def test_counterfactual_adds_the_swapped_episode_after_each_gendered_one(tmp_path, user_csv):
    out = parlai(
        ["display_data", "-t", "dialogft_files", "--files-datapath", str(user_csv), "-n", "4",
         "--datapath", str(tmp_path), "--mutators", "dialogft_counterfactual"],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    texts, labels = shown(out.stdout)
    assert texts[:2] == ["My husband wants a table for two tonight.", "My wife wants a table for two tonight."]
    assert labels[:2] == ["Sure. What time would he like?", "Sure. What time would she like?"]
    assert texts[2] == "我想订一张明天去北京的火车票。"  # nothing gendered: no copy
    assert texts[3] == "Can you find me a cheap hotel in the centre?"


def test_a_rate_outside_0_1_is_one_argparse_error_naming_the_flag(tmp_path):
    out = parlai(["display_data", "-t", "dialogft_chitchat", "--mutators", "dialogft_typos", "--noise-rate", "2"], tmp_path)
    assert out.returncode == 2
    assert "--noise-rate" in out.stderr and "between 0 and 1" in out.stderr


# ---------------------------------------------------------------- in-process behaviour


@pytest.mark.parametrize("name", NOISE_MUTATORS)
@pytest.mark.parametrize("text", [EN, ZH])
def test_rate_zero_is_the_identity(name, text):
    assert noise_mutator(name, rate=0.0).apply(text) == text


@pytest.mark.parametrize("name", NOISE_MUTATORS)
def test_the_same_seed_gives_the_same_noise_whatever_the_order(name):
    texts = [EN, ZH, "Where is the nearest station?", "这家餐馆的周边有哪些景点啊？"]
    forward = [noise_mutator(name, rate=0.5, seed=3).apply(t) for t in texts]
    one = noise_mutator(name, rate=0.5, seed=3)
    backward = [one.apply(t) for t in reversed(texts)][::-1]
    assert forward == backward
    other_seed = [noise_mutator(name, rate=0.5, seed=4).apply(t) for t in texts]
    assert other_seed != forward


def _noisy(name, text, rate=0.5):
    return noise_mutator(name, rate=rate, seed=1).apply(text)


def test_typos_edit_english_words_and_chinese_characters():
    en, zh = _noisy("dialogft_typos", EN), _noisy("dialogft_typos", ZH)
    assert en != EN and zh != ZH
    # Only letters and CJK characters are edited: punctuation and spacing survive.
    assert re.sub(r"[A-Za-z]", "", en) == re.sub(r"[A-Za-z]", "", EN)
    assert re.sub(r"[\u4e00-\u9fff]", "", zh) == re.sub(r"[\u4e00-\u9fff]", "", ZH)


def test_case_punct_changes_only_casing_and_punctuation():
    en = _noisy("dialogft_case_punct", EN, rate=0.8)
    assert en != EN
    assert re.sub(r"[^a-z ]", "", en.lower()) == re.sub(r"[^a-z ]", "", EN.lower())
    assert _noisy("dialogft_case_punct", "It costs 4.5 dollars", rate=1.0).lower().count("4.5") == 1


def test_width_turns_ascii_full_width_and_chinese_punctuation_ascii():
    en = _noisy("dialogft_width", EN, rate=1.0)
    assert "Ｈｅｌｌｏ" in en
    assert _noisy("dialogft_width", ZH, rate=1.0).count(",") == ZH.count("，")


def test_script_variant_writes_traditional_characters():
    zh = _noisy("dialogft_script_variant", ZH, rate=1.0)
    assert "這個問題請幫" in zh and "北京" in zh  # 北京 is the same in both scripts


def test_fillers_insert_filler_words():
    en = _noisy("dialogft_fillers", EN)
    zh = _noisy("dialogft_fillers", ZH)
    assert len(en.split()) > len(EN.split())
    assert any(f in zh for f in ("嗯", "呃", "那个", "就是", "然后"))


def test_noise_touches_the_text_only_unless_asked():
    def message():
        return Message({"text": EN, "labels": ["Sure, for what time?"], "episode_done": True})

    default = list(noise_mutator("dialogft_typos", rate=1.0)([message()]))[0]
    assert default["labels"] == ["Sure, for what time?"] and default["text"] != EN
    both = list(noise_mutator("dialogft_typos", rate=1.0, fields=["text", "labels"])([message()]))[0]
    assert both["labels"] != ["Sure, for what time?"]
    assert both["episode_done"] is True


@pytest.mark.parametrize(
    "text, swapped",
    [
        ("He gave his wife her keys.", "She gave her husband his keys."),
        ("I told her.", "I told him."),
        ("HE and Mr Smith", "SHE and Mrs Smith"),
        ("John will meet Mary in May.", "Patricia will meet James in May."),
        ("他们说其他人喜欢吉他。", "她们说其他人喜欢吉他。"),
        ("我丈夫和儿子想去北京。", "我妻子和女儿想去北京。"),
        ("The hotel has a pool.", "The hotel has a pool."),
    ],
)
def test_gender_swapper(text, swapped):
    assert GenderSwapper().swap(text) == swapped


def test_names_can_be_left_alone():
    assert GenderSwapper(names=False).swap("John asked his sister.") == "John asked her brother."


def _episode(*turns):
    return [Message({"text": t, "labels": [l], "episode_done": i == len(turns) - 1}) for i, (t, l) in enumerate(turns)]


def test_counterfactual_augment_and_swap_modes():
    gendered = _episode(("my son is hungry", "he can eat here"), ("thanks", "you are welcome"))
    neutral = _episode(("a table please", "for how many?"))
    augment = list(CounterfactualMutator({"cf_mode": "augment"})(gendered + neutral))
    assert [m["text"] for m in augment] == ["my son is hungry", "thanks", "my daughter is hungry", "thanks", "a table please"]
    assert augment[2]["labels"] == ["she can eat here"]
    assert [m["episode_done"] for m in augment] == [False, True, False, True, True]
    swap = list(CounterfactualMutator({"cf_mode": "swap"})(_episode(("my son is hungry", "he can eat here"))))
    assert [(m["text"], m["labels"]) for m in swap] == [("my daughter is hungry", ["she can eat here"])]


# --- dialogft_denoise: a pretraining objective ----------------------------------------------


@pytest.mark.parametrize("text", [EN, ZH])
def test_denoise_masks_about_a_quarter_of_the_units_in_spans_of_one_marker(text):
    import random

    noisy = corrupt(text, random.Random(0), 0.25, "<unk>")
    assert "<unk>" in noisy and noisy != text
    # Reading the kept pieces in order recovers them from the original: nothing else changed.
    position = 0
    for piece in noisy.split("<unk>"):
        found = text.find(piece, position)
        assert found >= 0, piece
        position = found + len(piece)
    assert "<unk><unk>" not in noisy  # a span, however long, is one marker
    masked_share = 1 - len(noisy.replace("<unk>", "")) / len(text)
    assert 0.1 < masked_share < 0.5


def test_denoise_masks_something_in_a_one_word_turn():
    import random

    assert corrupt("ok", random.Random(0), 0.25, "<unk>") == "<unk>"


def test_denoise_turns_every_turn_into_an_episode_that_rebuilds_it():
    episode = _episode(("I need a taxi to the station", "What time do you want to leave?"), ("at five", "Booked."))
    mutated = list(DenoiseMutator({})(episode))
    turns = ["I need a taxi to the station", "What time do you want to leave?", "at five", "Booked."]
    assert [m["labels"] for m in mutated] == [[t] for t in turns]
    assert all(m["episode_done"] for m in mutated)  # no history from another turn to copy from
    assert all("<unk>" in m["text"] and m["text"] != t for m, t in zip(mutated, turns))
    again = list(DenoiseMutator({})(_episode(("at five", "Booked."))))
    assert [m["text"] for m in again] == [m["text"] for m in mutated[2:]]  # the turn decides, not the order


def test_denoise_works_as_a_task_flag_in_a_mixture(tmp_path):
    out = parlai(["display_data", "-t", "dialogft_customer:lang=zh:mutators=dialogft_denoise", "-n", "4"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    texts, labels = shown(out.stdout)
    assert len(labels) == 4 and all("<unk>" in t for t in texts)
    assert all(re.search("[\u4e00-\u9fff]", label) for label in labels)


# --- Chinese words: fillers, script variant and span infilling act on jieba's words -----------

# Sentences whose dictionary segmentation is unambiguous (jieba agrees with and without its
# HMM), written out by hand: the words are the spec, not jieba's output read back.
SEGMENTED = [
    ["我", "想", "预订", "一个", "房间"],
    ["这家", "餐馆", "的", "周边", "有", "哪些", "景点", "啊"],
    ["他们", "后天", "去", "机场"],
    ["飞机", "什么", "时候", "起飞"],
    ["我", "想要", "一台", "新", "电脑"],
]
ZH_FILLER = re.compile("(?:嗯|呃|那个|就是|然后|这个)，")


def word_starts(words):
    """Where each word begins, in characters: the boundaries a filler may go in front of."""
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word)
    return starts


def filler_positions(noisy):
    """Where the fillers went, counted in characters of the clean text."""
    pieces = ZH_FILLER.split(noisy)
    return [sum(len(p) for p in pieces[:i + 1]) for i in range(len(pieces) - 1)]


@pytest.mark.parametrize("words", SEGMENTED, ids="".join)
def test_chinese_words_are_jiebas_dictionary_words(words):
    from parlai_dialogft.mutators.segment import zh_words

    assert zh_words("".join(words)) == words


@pytest.mark.parametrize("words", SEGMENTED, ids="".join)
def test_chinese_fillers_go_between_words_never_inside_one(words):
    text = "".join(words)
    every_word = noise_mutator("dialogft_fillers", rate=1.0).apply(text)
    assert ZH_FILLER.sub("", every_word) == text
    assert filler_positions(every_word) == word_starts(words)  # one filler in front of each word
    for seed in range(20):
        noisy = noise_mutator("dialogft_fillers", rate=0.5, seed=seed).apply(text)
        assert ZH_FILLER.sub("", noisy) == text  # only fillers and their commas were added
        assert set(filler_positions(noisy)) <= set(word_starts(words)), noisy


@pytest.mark.parametrize("words", SEGMENTED, ids="".join)
def test_script_variant_converts_whole_words_as_opencc_does(words):
    import opencc

    s2t = opencc.OpenCC("s2t")
    text = "".join(words)
    assert noise_mutator("dialogft_script_variant", rate=1.0).apply(text) == "".join(s2t.convert(w) for w in words)
    converted = 0
    for seed in range(20):
        noisy = noise_mutator("dialogft_script_variant", rate=0.5, seed=seed).apply(text)
        position = 0
        for word in words:  # each word is either untouched or OpenCC's conversion of the whole word
            if word != s2t.convert(word) and noisy.startswith(s2t.convert(word), position):
                converted += 1
                position += len(s2t.convert(word))
            else:
                assert noisy.startswith(word, position), (noisy, word)
                position += len(word)
        assert position == len(noisy)
    assert 0 < converted < 20 * sum(w != s2t.convert(w) for w in words)  # the rate decides, per word


def test_script_variant_follows_the_word_not_the_character():
    # 发 is 髮 in 头发 (hair) but 發 in 发展 (development); 后 is 後 in 后天 but stays in 皇后.
    assert noise_mutator("dialogft_script_variant", rate=1.0).apply("头发，发展，后天，皇后") == "頭髮，發展，後天，皇后"


@pytest.mark.parametrize("words", SEGMENTED, ids="".join)
def test_denoise_masks_whole_chinese_words(words):
    import random

    text = "".join(words)
    boundaries = set(word_starts(words)) | {len(text)}
    for seed in range(20):
        noisy = corrupt(text, random.Random(seed), 0.4, "<unk>")
        # The masked spans are what lies between the kept pieces.
        spans = re.fullmatch("(.+?)".join(map(re.escape, noisy.split("<unk>"))), text)
        assert spans and spans.lastindex, noisy
        for i in range(1, spans.lastindex + 1):
            assert {spans.start(i), spans.end(i)} <= boundaries, (noisy, spans.group(i))


def test_english_noise_and_infilling_are_unchanged_by_chinese_segmentation():
    import random

    assert _noisy("dialogft_fillers", EN) == (
        "Hello, like, I would like well, to book well, a table for two at you know, seven tonight. Thanks!"
    )
    assert corrupt(EN, random.Random(4), 0.25, "<unk>") == (
        "Hello, I would <unk> to book a table <unk> at <unk> tonight. Thanks!"
    )


def test_importing_the_mutators_loads_no_segmenter_and_using_them_prints_nothing(tmp_path):
    code = (
        "import sys; import parlai_dialogft.mutators; "
        "assert 'jieba' not in sys.modules and 'opencc' not in sys.modules, 'loaded at import'; "
        "from parlai_dialogft.mutators.noise import noise_mutator; "
        "print(noise_mutator('dialogft_fillers', rate=1.0).apply('我想预订一个房间')); "
        "print(noise_mutator('dialogft_script_variant', rate=1.0).apply('我想预订一个房间'))"
    )
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    out = subprocess.run([str(BIN / "python"), "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # jieba logs "Building prefix dict ..." to stderr unless quietened
    filled, traditional = out.stdout.splitlines()
    assert ZH_FILLER.sub("", filled) == "我想预订一个房间" and traditional == "我想預訂一個房間"
