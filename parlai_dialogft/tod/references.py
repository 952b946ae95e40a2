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

Each correction is logged. A reference is what the bookings table writes: 8 letters and
digits, with at least one of each (so postcodes, train ids and phone numbers are not).
"""

from __future__ import annotations

import logging
import re
from typing import Mapping

logger = logging.getLogger(__name__)

REFERENCE = re.compile(r"\b(?=[A-Za-z0-9]{0,7}[0-9])(?=[A-Za-z0-9]{0,7}[A-Za-z])[A-Za-z0-9]{8}\b")
NO_BOOKING = "I have not made that booking: no booking was confirmed."


def checked(reply: str, result: Mapping[str, str], database) -> str:
    """``reply`` with every reference it names backed by a row of ``database``'s bookings.

    ``result``: the answer of this round's call (parsed); ``database``: a
    :class:`~.database.TaskDatabase` or :class:`~.database.Databases`.
    """
    booked = result.get("reference") if result.get("booking") == "confirmed" else None
    answered = {str(value).upper() for value in result.values()}  # a --tools function's own references
    for named in dict.fromkeys(REFERENCE.findall(reply)):
        if database.bookings(named.upper()) or named.upper() in answered:
            continue
        if booked is None:
            logger.warning("reply names reference %s but no booking was made; replaced by: %s", named, NO_BOOKING)
            return NO_BOOKING
        logger.warning("reply names reference %s, which does not exist; the booking's is %s", named, booked)
        reply = re.sub(rf"\b{re.escape(named)}\b", booked, reply)
    return reply
