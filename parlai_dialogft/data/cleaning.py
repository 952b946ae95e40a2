"""The one cleaning step every dialogft teacher runs, and the report of what it did.

Text is cleaned turn by turn (:func:`clean_text`), then each conversation is repaired as a
whole (:func:`clean_conversations`):

* Unicode normalisation (NFKC by default: full-width Latin letters and digits and other
  compatibility forms fold, so ``ＡＢＣ１２３`` and ``ABC123`` are one token to the model; in a
  turn with Chinese, Japanese or Korean text the full-width punctuation ``，？！：（）`` is
  kept, as that text is written; ``--clean-normalize nfc`` folds nothing),
* control and invisible format characters removed, whitespace runs collapsed (line ends and
  indentation kept: code answers need them),
* optional masking of e-mail addresses and phone numbers (``--clean-mask-pii``),
* empty turns dropped (the neighbours, now by the same speaker, are merged),
* a conversation is cut before an over-long turn (``--clean-max-turn-chars``): the context
  before it stays coherent, and nothing after it would be,
* exact duplicate conversations dropped (the first copy is kept).

A turn keeps its corpus annotations (:attr:`Turn.annotations`) through cleaning: cleaning
changes only the spelling of a text, never which turn said what. A merge would give one turn
two turns' annotations, so a conversation with annotated turns that needs one is dropped whole
(on the shipped corpora none does). A cut keeps the turns before it, each with its own.

Nothing is dropped silently: every change is counted in a :class:`CleaningReport`, which the
base teacher logs once per setup.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, replace
from typing import Iterable, List

import regex

from parlai_dialogft.data.conversation import Conversation, Turn

EMAIL_TOKEN = "<email>"
PHONE_TOKEN = "<phone>"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Seven or more digits, grouped by spaces, dots or dashes, after an optional "+country" and
# "(area)" code. The ASCII-only look-arounds let a number touch CJK text ("电话13812345678").
# Long digit runs such as "20190101" are masked too: the option trades recall for that.
_PHONE = re.compile(
    r"(?<![0-9A-Za-z+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d(?:[ .-]?\d){6,14}"
    r"(?![0-9A-Za-z])"
)
# Control characters, lone surrogates (not encodable) and invisible format characters, but
# not line feed and tab, nor the zero-width joiner that builds emoji sequences.
_INVISIBLE = regex.compile(r"[\p{Cc}\p{Cs}\p{Cf}--[\n\t\u200d]]", regex.V1)
_INDENT = re.compile(r"[ \t]*")
_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")
# The full-width punctuation and symbols of the Halfwidth and Fullwidth Forms block
# (，！？：；（）【】～ ...), not its letters and digits: CJK text is written with them.
_FULL_WIDTH_PUNCTUATION = "".join(
    ch for ch in map(chr, range(0xFF01, 0xFF61)) if unicodedata.category(ch)[0] in "PS"
)
_KEPT_IN_CJK = re.compile(f"([{re.escape(_FULL_WIDTH_PUNCTUATION)}])")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class CleaningOptions:
    """What :func:`clean_text` and :func:`clean_conversations` do; defaults are the flags'."""

    normalize: str = "nfkc"  # "nfkc", "nfc" or "none"
    max_turn_chars: int = 2000  # 0 disables the limit
    mask_pii: bool = False
    dedup: bool = True


class CleaningReport(Counter):
    """Counts of what cleaning changed and dropped, by reason."""

    # Reasons in the order the summary lists them, with the words it uses.
    LABELS = (
        ("changed_turns", "turns normalised"),
        ("masked_emails", "e-mail addresses masked"),
        ("masked_phones", "phone numbers masked"),
        ("empty_turns", "empty turns dropped"),
        ("merged_turns", "same-speaker turns merged"),
        ("long_turns", "conversations cut at an over-long turn"),
        ("cut_turns", "turns dropped after such a cut"),
        ("annotated_merges", "annotated conversations dropped (a merge would misalign their annotations)"),
        ("single_speaker", "one-speaker conversations dropped"),
        ("duplicates", "duplicate conversations dropped"),
        ("no_reply", "conversations without a reply for the model"),
    )

    def summary(self) -> str:
        parts = [f"{self[key]} {words}" for key, words in self.LABELS if self[key]]
        return "; ".join(parts) if parts else "nothing changed or dropped"


def clean_text(text: str, options: CleaningOptions, report: Counter | None = None) -> str:
    """Return ``text`` cleaned; counts masked items into ``report`` when given."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", text)
    # ASCII is already NFKC/NFC; the check keeps English corpora fast.
    if options.normalize != "none" and not text.isascii():
        form = options.normalize.upper()
        if not unicodedata.is_normalized(form, text):
            # Normalising can yield characters the first pass removes (e.g. U+2028 stays,
            # but compatibility forms of control characters do not).
            text = _INVISIBLE.sub("", _normalize(form, text))
    if options.mask_pii:
        text, emails = _EMAIL.subn(EMAIL_TOKEN, text)
        text, phones = _PHONE.subn(PHONE_TOKEN, text)
        if report is not None:
            report["masked_emails"] += emails
            report["masked_phones"] += phones
    text = "\n".join(_clean_line(line) for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def _normalize(form: str, text: str) -> str:
    """``unicodedata.normalize``, except that NFKC keeps full-width punctuation in CJK text."""
    folded = unicodedata.normalize(form, text)
    if form != "NFKC" or not _CJK.search(folded):
        return folded
    return "".join(
        part if i % 2 else unicodedata.normalize(form, part)  # odd parts: the kept punctuation
        for i, part in enumerate(_KEPT_IN_CJK.split(text))
    )


def _clean_line(line: str) -> str:
    """Collapse whitespace runs, but keep a line's indentation: code answers need it."""
    indent = _INDENT.match(line).group()  # type: ignore[union-attr]
    rest = _SPACES.sub(" ", line[len(indent):]).rstrip()
    return indent + rest if rest else ""


def clean_turns(turns: Iterable[Turn], options: CleaningOptions, report: Counter) -> List[Turn]:
    """Clean one conversation's turns: text, empty and over-long turns, speaker merges."""
    kept: List[Turn] = []
    turns = list(turns)
    for index, turn in enumerate(turns):
        text = clean_text(turn.text, options, report)
        if text != turn.text:
            report["changed_turns"] += 1
        if not text:
            report["empty_turns"] += 1
            continue
        if options.max_turn_chars and len(text) > options.max_turn_chars:
            report["long_turns"] += 1
            report["cut_turns"] += len(turns) - index - 1
            break
        knowledge = tuple(k for k in (clean_text(k, options) for k in turn.knowledge) if k)
        if kept and kept[-1].speaker == turn.speaker:
            report["merged_turns"] += 1
            last = kept.pop()
            # One turn cannot carry two turns' annotations: the merged turn has none.
            kept.append(Turn(turn.speaker, last.text + "\n" + text, last.knowledge + knowledge))
        else:
            kept.append(replace(turn, text=text, knowledge=knowledge))
    return kept


def clean_conversations(
    conversations: Iterable[Conversation], options: CleaningOptions, report: Counter
) -> List[Conversation]:
    """Clean every conversation; drop one-speaker results, exact duplicates and annotated
    conversations that needed a merge (each counted)."""
    seen = set()
    cleaned = []
    for conversation in conversations:
        changes: Counter = Counter()
        turns = clean_turns(conversation.turns, options, changes)
        report.update(changes)
        if changes["merged_turns"] and any(turn.annotations for turn in conversation.turns):
            report["annotated_merges"] += 1
            continue
        if len({turn.speaker for turn in turns}) < 2:
            report["single_speaker"] += 1
            continue
        if options.dedup:
            fingerprint = tuple((turn.speaker, turn.text) for turn in turns)
            if fingerprint in seen:
                report["duplicates"] += 1
                continue
            seen.add(fingerprint)
        cleaned.append(conversation.with_turns(turns))
    return cleaned
