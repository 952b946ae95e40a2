"""A reply may name a booking reference only if the database made that booking.

The model learns to copy the reference from the answer it reads (``APIRESP: booking =
confirmed ; reference = 7GAWK763``), and, being a language model, also to write
reference-shaped strings where no booking was made: the training replies are full of them.
A user acts on a reference, so the loop checks each one a reply names against the bookings
table before the user sees it:

* a reference the bookings table has stands (this round's booking, or an earlier one), as
  does one the round's answer gives (a ``--tools`` function's, :mod:`.server_tools`);
* one it lacks, in a round whose call booked: the round's real reference replaces it;
* one it lacks, in a round that booked nothing: the reply claims a booking that does not
  exist, and is replaced by :data:`NO_BOOKING`.

A reply that says a booking is made without naming a reference ("Booked!", "已为您预订好了",
:data:`CONFIRMS`) is held to the same rule: it stands in a round whose call booked, or after
a booking earlier in the conversation, and is replaced by :data:`NO_BOOKING` otherwise.

Each correction is logged. A reference is what the bookings table writes: 8 letters and
digits, with at least one of each (so postcodes, train ids and phone numbers are not).
:data:`NO_BOOKING` is said in Chinese when the reply is Chinese.
"""

from __future__ import annotations

import logging
import re
from typing import Mapping

logger = logging.getLogger(__name__)

# Bounded by anything but an ASCII letter or digit: Chinese text writes no space around it.
REFERENCE = re.compile(r"(?<![A-Za-z0-9])(?=[A-Za-z0-9]{0,7}[0-9])(?=[A-Za-z0-9]{0,7}[A-Za-z])[A-Za-z0-9]{8}(?![A-Za-z0-9])")
NO_BOOKING = "I have not made that booking: no booking was confirmed."
NO_BOOKING_ZH = "我没有完成这个预订：没有任何预订得到确认。"
#: Saying a booking is made, in the words of the training replies (MultiWOZ's, and ours in Chinese).
CONFIRMS = re.compile(
    r"\b(?:booked|reserved|booking (?:is|was|has been) (?:confirmed|successful|made|complete)"
    r"|reservation (?:is|was|has been) (?:confirmed|successful|made|complete))\b"
    r"|预订成功|预定成功|订好了|预订好了|预定好了|为您预订了|为您预定了|帮您预订了|帮您预定了",
    re.IGNORECASE)
_CJK = re.compile(r"[\u4e00-\u9fff]")


def no_booking(reply: str) -> str:
    return NO_BOOKING_ZH if _CJK.search(reply) else NO_BOOKING


def checked(reply: str, result: Mapping[str, str], database, booked_before: bool = False) -> str:
    """``reply`` with every reference it names backed by a row of ``database``'s bookings.

    ``result``: the answer of this round's call (parsed); ``database``: a
    :class:`~.database.TaskDatabase` or :class:`~.database.Databases`; ``booked_before``: a
    booking was made earlier in this conversation (a confirmation may then speak of it).
    """
    booked = result.get("reference") if result.get("booking") == "confirmed" else None
    answered = {str(value).upper() for value in result.values()}  # a --tools function's own references
    named_real = False
    for named in dict.fromkeys(REFERENCE.findall(reply)):
        if database.bookings(named.upper()) or named.upper() in answered:
            named_real = True
            continue
        if booked is None:
            logger.warning("reply names reference %s but no booking was made; replaced by: %s", named, no_booking(reply))
            return no_booking(reply)
        logger.warning("reply names reference %s, which does not exist; the booking's is %s", named, booked)
        reply = re.sub(rf"(?<![A-Za-z0-9]){re.escape(named)}(?![A-Za-z0-9])", booked, reply)
    if booked is None and not booked_before and not named_real and CONFIRMS.search(reply):
        logger.warning("reply says a booking was made but none was: %r; replaced by: %s", reply, no_booking(reply))
        return no_booking(reply)
    return reply
