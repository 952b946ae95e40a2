"""Hypothesis strategies more than one property test draws from."""

from __future__ import annotations

from hypothesis import strategies as st

# Mixed scripts, every control/format/surrogate category, whitespace of all kinds.
ADVERSARIAL = st.text(
    st.one_of(
        st.characters(),
        st.sampled_from(list("\n\r\t \u3000\u00a0\u2028\u200b\u200d\ufeff\x00\x1b\x85ＡＢ１，。你好Ωé́")),
    ),
    max_size=200,
)
