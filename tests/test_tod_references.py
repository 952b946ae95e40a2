"""A booking the bot claims exists: every reference a reply names is a row of the bookings table."""

import logging

import pytest
from parlai.core.message import Message

from parlai_dialogft.tod import calls
from tests.support.agents import make_agent
from tests.support.tod_agents import script_rounds

DATAPATH = "/tmp/dialogft-test-data"
BOOK_HOTEL = {"api_name": "book_hotel", "name": "acorn guest house", "area": "north", "book_stay": "4",
              "book_day": "saturday", "book_people": "7"}
FIND_HOTEL = {"api_name": "find_hotel", "area": "north", "pricerange": "cheap"}
INVENTED = "ZQ7XK2PA"


@pytest.fixture
def database():
    from parlai_dialogft.tod.database import open_databases

    return open_databases("multiwoz")


def test_the_reference_of_a_booking_made_stands(database):
    from parlai_dialogft.tod.references import checked

    answer = database.answer(BOOK_HOTEL)
    assert answer["booking"] == "confirmed"
    reply = f"Booked ! Your reference number is {answer['reference']} ."
    assert checked(reply, answer, database) == reply
    # ... and in a later round, whose own call booked nothing.
    later = f"Your reference is still {answer['reference']} ."
    assert checked(later, {"count": "2"}, database) == later


def test_an_invented_reference_becomes_the_bookings_own(database, caplog):
    from parlai_dialogft.tod.references import checked

    answer = database.answer(BOOK_HOTEL)
    with caplog.at_level(logging.WARNING):
        fixed = checked(f"Booked ! Your reference number is {INVENTED} .", answer, database)
    assert fixed == f"Booked ! Your reference number is {answer['reference']} ."
    assert INVENTED in caplog.text


def test_a_reference_without_a_booking_is_not_said(database, caplog):
    from parlai_dialogft.tod.references import NO_BOOKING, checked

    with caplog.at_level(logging.WARNING):
        assert checked(f"Done , reference {INVENTED} .", database.answer(FIND_HOTEL), database) == NO_BOOKING
        failed = database.answer({k: v for k, v in BOOK_HOTEL.items() if k != "book_day"})
        assert failed["booking"] == "failed"
        assert checked(f"Done , reference {INVENTED.lower()} .", failed, database) == NO_BOOKING
    assert caplog.text.count("no booking was made") == 2
    assert database.bookings() == []


@pytest.mark.parametrize("reply", [
    "The postcode is cb41da and the phone is 01223353071 .",
    "TR5159 leaves at 05:11 and costs 9.80 pounds .",
    "It is a guesthouse , moderately priced .",
])
def test_postcodes_train_ids_phones_and_words_are_not_references(database, reply):
    from parlai_dialogft.tod.references import checked

    assert checked(reply, {"count": "0"}, database) == reply


@pytest.mark.parametrize("reply", [
    "I have booked it for you .",
    "Your table is reserved .",
    "The booking was successful .",
    "已为您预订好了。",
])
def test_a_confirmation_without_a_booking_is_not_said_in_either_language(database, reply, caplog):
    from parlai_dialogft.tod.references import NO_BOOKING, NO_BOOKING_ZH, checked

    expected = NO_BOOKING_ZH if reply.startswith("已") else NO_BOOKING
    with caplog.at_level(logging.WARNING):
        assert checked(reply, database.answer(FIND_HOTEL), database) == expected
    assert "no booking" in caplog.text or "none was" in caplog.text
    # ... and stands where the round booked, or a booking was made earlier in the conversation.
    assert checked(reply, database.answer(BOOK_HOTEL), database) == reply
    assert checked(reply, {"count": "2"}, database, booked_before=True) == reply


@pytest.mark.parametrize("reply", [
    "Would you like me to book it ?",
    "The booking was unsuccessful . Shall I try another day ?",
    "Booking failed : there is no table at that time .",
    "需要我帮您预订吗？",
])
def test_offers_and_failures_are_not_confirmations(database, reply):
    from parlai_dialogft.tod.references import checked

    assert checked(reply, {"count": "2"}, database) == reply


def looping_agent(task_db="multiwoz"):
    return make_agent("zoo:dialogft/bilingual_t5", task_db=task_db, datatype="valid", datapath=DATAPATH)


def test_in_the_loop_the_user_reads_the_reference_of_the_row_written(monkeypatch):
    """The model books, then names a reference of its own making: the user reads the row's."""
    script_rounds(monkeypatch, calls.call_text(BOOK_HOTEL), f"Booked , reference {INVENTED} .")
    agent = looping_agent()
    agent.observe(Message({"text": "Book the acorn guest house for 7 people , 4 nights from saturday .", "episode_done": False}))
    reply = agent.act()
    [booking] = agent.task_db.bookings()
    assert reply["text"] == f"Booked , reference {booking['reference']} ."
    assert booking["name"] == "acorn guest house" and booking["book_people"] == "7"


def test_in_the_loop_a_round_that_booked_nothing_claims_no_booking(monkeypatch):
    from parlai_dialogft.tod.references import NO_BOOKING

    script_rounds(monkeypatch, calls.call_text(FIND_HOTEL), f"Booked , reference {INVENTED} .")
    agent = looping_agent()
    agent.observe(Message({"text": "Book a cheap hotel in the north .", "episode_done": False}))
    assert agent.act()["text"] == NO_BOOKING
    assert agent.task_db.bookings() == []


BOOK_JINGYI = {"api_name": "book_酒店", "名称": "北京京仪大酒店", "book_人数": "2", "book_日期": "周五", "book_天数": "3"}


def test_in_chinese_the_user_reads_the_reference_of_the_row_written(monkeypatch):
    script_rounds(monkeypatch, calls.call_text(BOOK_JINGYI), f"已为您预订好了，预订号是{INVENTED}。")
    agent = looping_agent("crosswoz")
    agent.observe(Message({"text": "帮我订北京京仪大酒店，2个人，周五入住3晚。", "episode_done": False}))
    reply = agent.act()
    [booking] = agent.task_db.bookings()
    assert reply["text"] == f"已为您预订好了，预订号是{booking['reference']}。"
    assert booking["名称"] == "北京京仪大酒店" and booking["book_天数"] == "3"


def test_in_chinese_a_failed_booking_is_not_confirmed(monkeypatch):
    from parlai_dialogft.tod.references import NO_BOOKING_ZH

    missing_day = {k: v for k, v in BOOK_JINGYI.items() if k != "book_日期"}
    script_rounds(monkeypatch, calls.call_text(missing_day), f"已为您预订好了，预订号是{INVENTED}。")
    agent = looping_agent("crosswoz")
    agent.observe(Message({"text": "帮我订北京京仪大酒店，2个人，住3晚。", "episode_done": False}))
    reply = agent.act()
    assert "missing book_日期" in reply["tod_result"]
    assert reply["text"] == NO_BOOKING_ZH
    assert agent.task_db.bookings() == []


def test_a_later_round_may_speak_of_the_booking_made_earlier(monkeypatch):
    script_rounds(monkeypatch, calls.call_text(BOOK_HOTEL), "Booked !")
    agent = looping_agent()
    agent.observe(Message({"text": "Book the acorn guest house for 7 people , 4 nights from saturday .", "episode_done": False}))
    agent.self_observe(agent.act())
    script_rounds(monkeypatch, calls.CALL.strip(), "Your room is booked , have a nice stay .")
    agent.observe(Message({"text": "Thanks , is it booked then ?", "episode_done": False}))
    assert agent.act()["text"] == "Your room is booked , have a nice stay ."
    # A new conversation has booked nothing.
    agent.reset()
    agent.observe(Message({"text": "Is my room booked ?", "episode_done": False}))
    assert agent.act()["text"] != "Your room is booked , have a nice stay ."
