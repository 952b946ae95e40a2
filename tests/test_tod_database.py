"""The task database: the shipped MultiWOZ and CrossWOZ databases in SQLite answer a call.

Each test states one rule of :mod:`parlai_dialogft.tod.database` (and its dataset modules)
with a call made by hand, against the real SQLite file; the gold-state tests read the
shipped dialogues.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import logging
import re
import sqlite3
from pathlib import Path

import pytest
from parlai.core.agents import Agent

from parlai_dialogft.data.readers.corpus_files import cache_dir, corpus_dir, load_json
from parlai_dialogft.tod import calls, database
from parlai_dialogft.tod.database import UnknownDatabaseError, database_file, open_database
from parlai_dialogft.utils.errors import UserError

REFERENCE = re.compile(r"[A-Z0-9]{8}")
ELY = {"departure": "cambridge", "destination": "ely", "day": "monday"}  # trains at hh:50, arriving hh+1:07


@pytest.fixture(scope="module")
def mw():
    return open_database("multiwoz", seed=0)


@pytest.fixture(scope="module")
def cw():
    return open_database("crosswoz", seed=0)


def names(rows, key="name"):
    return [row[key] for row in rows]


def fingerprint(path: Path) -> dict:
    """table -> (row count, sha256 of every row), read from the file itself."""
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        out = {}
        for table in tables:
            rows = conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall()
            out[table] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
        return out
    finally:
        conn.close()


# --- the SQLite file ------------------------------------------------------------------------


def test_the_database_is_an_sqlite_file_in_the_corpus_cache_with_a_table_per_domain(mw, cw):
    assert mw.path.parent == cache_dir() / "tod" and mw.path.suffix == ".sqlite3"
    mw_tables = fingerprint(mw.path)
    assert set(mw_tables) == {"attraction", "hospital", "hotel", "police", "restaurant", "taxi", "train"}
    root = corpus_dir("multiwoz_db_convlab2")
    for table in ("attraction", "hospital", "hotel", "police", "restaurant", "train"):
        assert mw_tables[table][0] == len(load_json(root / f"{table}_db.json.gz"))
    assert set(fingerprint(cw.path)) == {"attraction", "restaurant", "hotel", "metro", "taxi"}
    conn = sqlite3.connect(cw.path)
    columns = {row[1]: row[2] for row in conn.execute('PRAGMA table_info("restaurant")')}
    conn.close()
    # one column per attribute; lists as JSON text, prices and ratings as numbers
    assert columns["推荐菜"] == "JSON_TEXT" and columns["人均消费"] == "NUMERIC" and columns["名称"] == "TEXT"


def test_the_file_is_built_once_atomically_and_rebuilt_when_a_source_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("DIALOGFT_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "corpus"
    source.mkdir()
    for path in corpus_dir("multiwoz_db_convlab2").glob("*_db.json.gz"):
        (source / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(database, "corpus_dir", lambda name: source)

    first = database_file("multiwoz")
    built = first.stat().st_mtime_ns
    assert database_file("multiwoz") == first and first.stat().st_mtime_ns == built  # not built again
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temporary file left

    (source / "police_db.json.gz").write_bytes(gzip.compress(b'[{"name": "x"}]'))
    second = database_file("multiwoz")
    assert second != first and fingerprint(second)["police"][0] == 1


def test_an_unwritable_cache_builds_in_the_temporary_folder(tmp_path, monkeypatch):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("DIALOGFT_CACHE_DIR", str(blocked))
    monkeypatch.setattr(database.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    path = database_file("crosswoz")
    assert path.parent == tmp_path / "tmp" / "parlai_dialogft-tod" and fingerprint(path)["hotel"][0] == 1133


def test_the_entities_are_opened_read_only(mw):
    before = fingerprint(mw.path)
    assert mw._conn.execute("PRAGMA query_only").fetchone() == (1,)
    with pytest.raises(sqlite3.OperationalError):
        mw._conn.execute('DELETE FROM "hotel"')
    mw._conn.execute("PRAGMA query_only = OFF")  # the file itself is opened read-only too
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            mw._conn.execute('DELETE FROM "hotel"')
    finally:
        mw._conn.execute("PRAGMA query_only = ON")
    assert fingerprint(mw.path) == before


def test_an_unknown_database_is_a_user_error():
    with pytest.raises(UnknownDatabaseError, match="multiwoz, crosswoz"):
        open_database("sgd")
    assert issubclass(UnknownDatabaseError, UserError)


# --- MultiWOZ: what a constraint means -------------------------------------------------------


def test_multiwoz_dontcare_is_no_constraint(mw):
    north = mw.query("hotel", {"area": "north"})
    assert north and mw.query("hotel", {"area": "north", "pricerange": "dontcare", "stars": "don't care"}) == north


def test_multiwoz_values_match_whatever_their_case_and_spaces(mw):
    wanted = mw.query("hotel", {"type": "guesthouse", "area": "north"})
    assert wanted and mw.query("hotel", {"type": "Guest House", "area": "  NORTH "}) == wanted
    assert mw.query("hotel", {"area": "center"}) == mw.query("hotel", {"area": "centre"})  # ConvLab-2's spelling
    assert mw.query("hotel", {"parking": "free"}) == mw.query("hotel", {"parking": "yes"})


def test_multiwoz_slot_names_match_whatever_their_case(mw):
    assert mw.query("train", {"leaveat": "10:00", **ELY}) == mw.query("train", {"leaveAt": "10:00", **ELY})


def test_multiwoz_leave_at_means_at_or_after_earliest_first(mw):
    trains = mw.query("train", {**ELY, "leaveAt": "9:30"})
    times = [t["leaveAt"] for t in trains]
    assert times and all(t >= "09:30" for t in times) and times == sorted(times)
    # every monday cambridge -> ely train leaving at or after 09:30, and no other
    everything = mw.query("train", ELY)
    assert sorted(times) == sorted(t["leaveAt"] for t in everything if t["leaveAt"] >= "09:30")
    at_the_minute = mw.query("train", {**ELY, "leaveAt": "09:50"})
    assert at_the_minute[0]["leaveAt"] == "09:50"  # "at or after": the 09:50 train counts
    for spelled in ("09:30", "0930", "after 9:30", "9.30 am"):
        assert mw.query("train", {**ELY, "leaveAt": spelled}) == trains


def test_multiwoz_arrive_by_means_at_or_before_latest_first(mw):
    trains = mw.query("train", {**ELY, "arriveBy": "1pm"})
    times = [t["arriveBy"] for t in trains]
    assert times and all(t <= "13:00" for t in times) and times == sorted(times, reverse=True)
    at_the_minute = mw.query("train", {**ELY, "arriveBy": "12:07"})
    assert at_the_minute[0]["arriveBy"] == "12:07"


def test_multiwoz_names_match_as_the_inform_metric_matches_them(mw):
    assert names(mw.query("hotel", {"name": "alexander"})) == ["alexander bed and breakfast"]  # a part of the name
    assert names(mw.query("hotel", {"name": "acorn guesthouse"})) == ["acorn guest house"]  # near enough (97)
    assert names(mw.query("hotel", {"name": "Worth House"})) == ["worth house", "warkworth house"]  # exact first
    assert names(mw.query("restaurant", {"name": "Hotel Du Vin & Bistro"})) == ["hotel du vin and bistro"]
    assert "nandos" in names(mw.query("restaurant", {"name": "nando's"}))
    # the corpus's own misspellings, too far for the fuzzy match
    assert names(mw.query("attraction", {"name": "christ college"})) == ["christ's college"]
    assert names(mw.query("hotel", {"name": "huntingdon hotel"})) == ["huntingdon marriott hotel"]
    assert mw.query("hotel", {"name": "the savoy"}) == []


def test_multiwoz_food_matches_fuzzily_and_by_its_known_variants(mw):
    assert {r["food"] for r in mw.query("restaurant", {"food": "european"})} == {"european", "modern european"}
    assert mw.query("restaurant", {"food": "english"}) == mw.query("restaurant", {"food": "british"})


def test_multiwoz_an_unknown_value_in_the_database_satisfies_any_constraint(mw):
    # abbey pool's entrance fee is "?" (unknown) in the database
    assert names(mw.query("attraction", {"name": "abbey pool and astroturf pitch", "entrance fee": "free"})) == [
        "abbey pool and astroturf pitch"]


def test_multiwoz_a_time_it_cannot_read_finds_nothing(mw, caplog):
    with caplog.at_level(logging.WARNING):
        assert mw.query("train", {"day": "monday", "leaveAt": "whenever"}) == []
    assert "whenever" in caplog.text


def test_multiwoz_hospital_and_police_are_single_table_lookups(mw):
    assert names(mw.query("hospital", {"department": "Emergency Department"}), "department") == ["emergency department"]
    assert len(mw.query("hospital", {})) == 66
    assert names(mw.query("police", {"name": "cambridge police"})) == ["Parkside Police Station"]  # the one station
    assert mw.answer({"api_name": "find_police"}) == {
        "count": "1", "name": "Parkside Police Station", "address": "Parkside, Cambridge", "postcode": "cb11jg",
        "phone": "01223358966"}


# --- CrossWOZ: what a constraint means -------------------------------------------------------


def crosswoz_records(table):
    return [record for _name, record in load_json(corpus_dir("crosswoz_database") / f"{table}_db.json.gz")]


def test_crosswoz_rating_is_at_least(cw):
    expected = [r["名称"] for r in crosswoz_records("attraction") if r["评分"] is not None and r["评分"] >= 4.5]
    assert names(cw.query("景点", {"评分": "4.5分以上"}), "名称") == expected
    assert all(float(r["评分"]) == 5 for r in cw.query("酒店", {"评分": "5分"}))


@pytest.mark.parametrize("value, low, high", [("100-150元", 100, 150), ("200元以上", 200, None),
                                             ("20元以下", None, 20), ("60元", 60, 60), ("免费", 0, 0),
                                             ("不免费", 1, None)])
def test_crosswoz_prices_are_ranges(cw, value, low, high):
    expected = [r["名称"] for r in crosswoz_records("attraction") if r["门票"] is not None
                and (low is None or r["门票"] >= low) and (high is None or r["门票"] <= high)]
    assert expected and names(cw.query("景点", {"门票": value}), "名称") == expected


def test_crosswoz_dishes_and_facilities_are_contained_word_by_word(cw):
    for row in cw.query("餐馆", {"推荐菜": "驴杂汤"}):
        assert any("驴杂汤" in dish for dish in json.loads(row["推荐菜"]))
    both = cw.query("酒店", {"酒店设施": "叫醒服务 早餐服务"})
    assert both and len(both) < len(cw.query("酒店", {"酒店设施": "叫醒服务"}))


def test_crosswoz_nearby_places_are_searched_in_the_list(cw):
    for place in ("故宫", "长城"):  # no place is called just 长城: 八达岭长城, 慕田峪长城 ...
        expected = [r["名称"] for r in crosswoz_records("restaurant") if any(place in p for p in r["周边景点"])]
        assert expected and names(cw.query("餐馆", {"周边景点": place}), "名称") == expected


def test_crosswoz_a_name_is_contained_exact_first_and_overrides_the_rest(cw):
    assert names(cw.query("景点", {"名称": "天安门"}), "名称") == ["天安门广场", "天安门城楼"]
    assert names(cw.query("景点", {"名称": "天安门城楼", "门票": "1000元以上"}), "名称") == ["天安门城楼"]
    assert names(cw.query("酒店", {"名称": "北京饭店"}), "名称")[0] == "北京饭店"


def test_crosswoz_hotel_type_is_contained(cw):
    assert cw.query("酒店", {"酒店类型": "经济"}) == cw.query("酒店", {"酒店类型": "经济型"})


def test_crosswoz_metro_finds_the_station_near_each_end(cw):
    answer = cw.answer({"api_name": "find_地铁", "出发地": "故宫", "目的地": "北京贵都大酒店"})
    assert answer == {"count": "2", "出发地附近地铁站": "灯市口地铁站A口", "目的地附近地铁站": "菜市口地铁站D口"}
    assert cw.answer({"api_name": "find_地铁", "出发地": "故宫"}) == {"count": "0"}


def test_crosswoz_taxi_is_the_template_car_the_replies_name(cw):
    assert cw.answer({"api_name": "find_出租", "出发地": "故宫", "目的地": "颐和园"}) == {
        "count": "1", "车型": "#CX", "车牌": "#CP"}


# --- answers ----------------------------------------------------------------------------------


def test_a_multiwoz_find_answers_the_count_and_the_first_match_compactly(mw):
    answer = mw.answer(calls.parse_call(
        "APICALL: api_name = find_restaurant ; area = centre ; food = italian ; pricerange = cheap"))
    assert answer == {"count": "3", "name": "pizza hut city centre", "food": "italian", "area": "centre",
                      "pricerange": "cheap", "address": "Regent Street City Centre", "postcode": "cb21ab",
                      "phone": "01223323737"}
    train = mw.answer({"api_name": "find_train", **ELY, "leaveAt": "9:30"})
    assert set(train) == {"count", "trainID", "departure", "destination", "day", "leaveAt", "arriveBy", "duration",
                          "price"}


def test_a_crosswoz_find_answers_as_the_replies_write_values(cw):
    answer = cw.answer({"api_name": "find_景点", "名称": "故宫"})
    assert answer["count"] == "1" and answer["名称"] == "故宫" and answer["门票"] == "60元" and answer["评分"] == "4.7分"
    assert len(answer["周边景点"].split("、")) == 5  # lists cut short
    assert cw.answer({"api_name": "find_景点", "名称": "天安门广场"})["门票"] == "免费"
    assert "introduction" not in str(answer) and "location" not in str(answer)


def test_no_match_is_count_zero(mw, cw):
    assert mw.answer({"api_name": "find_hotel", "area": "north", "stars": "5"}) == {"count": "0"}
    assert cw.answer({"api_name": "find_酒店", "价格": "1元以下"}) == {"count": "0"}


# --- bookings ---------------------------------------------------------------------------------


HOTEL_BOOKING = {"api_name": "book_hotel", "name": "acorn guest house", "book_people": "2", "book_day": "monday",
                 "book_stay": "3"}


def test_a_booking_writes_a_row_whose_reference_reads_back(mw):
    db = mw.fork(seed=1)
    answer = db.answer(HOTEL_BOOKING)
    assert answer["booking"] == "confirmed" and REFERENCE.fullmatch(answer["reference"])
    assert answer["name"] == "acorn guest house" and answer["book_stay"] == "3"
    assert db.bookings(answer["reference"]) == [{
        "reference": answer["reference"], "domain": "hotel", "name": "acorn guest house", "book_people": "2",
        "book_day": "monday", "book_stay": "3"}]
    assert [b["reference"] for b in db.bookings()] == [answer["reference"]]
    assert db.bookings("NOSUCH00") == []


def test_the_named_entity_is_booked_not_the_first_match(mw):
    db = mw.fork()
    assert mw.query("hotel", {"area": "north"})[0]["name"] != "worth house"
    assert db.answer({**HOTEL_BOOKING, "name": "worth house", "area": "north"})["name"] == "worth house"


def test_a_booking_needs_an_entity_and_the_details_of_its_domain(mw):
    db = mw.fork()
    assert db.answer({**HOTEL_BOOKING, "book_stay": "dontcare"}) == {"booking": "failed", "reason": "missing book_stay"}
    assert db.answer({"api_name": "book_restaurant", "food": "italian", "book_people": "2"}) == {
        "booking": "failed", "reason": "missing book_day, book_time"}
    assert db.answer({**HOTEL_BOOKING, "name": "the savoy"}) == {
        "booking": "failed", "count": "0", "reason": "no hotel matches"}
    assert db.bookings() == []


def test_a_train_booking_names_the_train_and_its_times(mw):
    db = mw.fork()
    answer = db.answer({"api_name": "book_train", **ELY, "leaveAt": "9:30", "book_people": "3"})
    first = mw.query("train", {**ELY, "leaveAt": "9:30"})[0]
    assert (answer["trainID"], answer["leaveAt"], answer["book_people"]) == (first["trainID"], first["leaveAt"], "3")


def test_a_taxi_booking_returns_a_car_and_a_phone_as_multiwoz_does(mw):
    db = mw.fork()
    answer = db.answer({"api_name": "book_taxi", "departure": "cotto", "destination": "ely", "leaveAt": "10:00"})
    assert re.fullmatch(r"(black|white|red|yellow|blue|grey) \w+", answer["type"])
    assert re.fullmatch(r"07\d{9}", answer["phone"]) and db.bookings(answer["reference"])
    assert db.answer({"api_name": "book_taxi", "departure": "cotto", "destination": "ely"}) == {
        "booking": "failed", "reason": "missing leaveAt or arriveBy"}


def test_bookings_are_per_instance_and_can_be_kept_in_a_file(mw, tmp_path):
    path = tmp_path / "bookings.sqlite3"
    kept, other = mw.fork(bookings=path), mw.fork()
    reference = kept.answer(HOTEL_BOOKING)["reference"]
    assert other.bookings() == []
    assert [b["reference"] for b in mw.fork(bookings=path).bookings()] == [reference]


def test_the_same_seed_gives_the_same_references(mw):
    assert mw.fork(seed=7).answer(HOTEL_BOOKING) == mw.fork(seed=7).answer(HOTEL_BOOKING)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [{"api_name": "find_spaceship"}, {"api_name": "cancel_hotel"}, {"area": "north"},
                                  {"api_name": "book_景点"}])
def test_an_unknown_domain_or_action_is_count_zero_and_one_warning(mw, cw, caplog, call):
    db = cw if "景点" in call.get("api_name", "") else mw
    with caplog.at_level(logging.WARNING):
        assert db.answer(call) == {"count": "0"}
    assert len(caplog.records) == 1
    assert calls.call_text(call) in caplog.text and ("find_hotel" in caplog.text or "find_景点" in caplog.text)


def test_an_unknown_slot_is_dropped_with_a_warning_naming_it(mw, caplog):
    with caplog.at_level(logging.WARNING):
        found = mw.query("hotel", {"area": "north", "colour": "blue"})
    assert found == mw.query("hotel", {"area": "north"})
    assert "'colour'" in caplog.text and "pricerange" in caplog.text


INJECTIONS = ["x' OR 1=1 --", "' OR '1'='1", "; DROP TABLE hotel", "north'; DROP TABLE hotel; --",
              '" OR ""="', "%", "_", "*", "') OR ('a'='a"]


def test_values_that_look_like_sql_match_nothing_and_change_nothing(mw, cw):
    before = {db.name: fingerprint(db.path) for db in (mw, cw)}
    for db in (mw, cw):
        for domain in db.domains:
            if domain in ("police", "taxi", "出租"):  # these do not search: one station, one car template
                continue
            for slot in db.slots(domain):
                for value in INJECTIONS:
                    rows = db.query(domain, {slot: value})
                    # a value matches only as the string it is (a dish "花雕极品小龙虾_1" has a "_"),
                    # and MultiWOZ's "?" (unknown) passes any constraint
                    assert all(row[slot] == "?" or value in row[slot] for row in rows), (db.name, domain, slot, value)
                    assert db.answer(calls.make_call(calls.FIND, domain, {slot: value}))["count"] == str(len(rows))
        db.answer({"api_name": "find_hotel; DROP TABLE hotel", "area": "north"})
        db.answer({"api_name": "find_hotel", 'area" = "north" OR 1=1 --': "x"})
    assert {db.name: fingerprint(db.path) for db in (mw, cw)} == before
    assert before["multiwoz"]["hotel"][0] == 33 and before["crosswoz"]["hotel"][0] == 1133


def test_sql_text_holds_no_value_from_a_call(mw, monkeypatch):
    seen = []
    real = mw._conn

    class Spy:
        def execute(self, sql, params=()):
            seen.append(sql)
            return real.execute(sql, params)

    monkeypatch.setattr(mw, "_conn", Spy())
    mw.query("hotel", {"name": "MARKER1", "area": "MARKER2"})
    mw.query("train", {"leaveAt": "11:11", "departure": "MARKER3"})
    assert seen and not any(marker in sql for sql in seen for marker in ("MARKER", "11:11"))


# --- gold states find the entity the gold reply names ------------------------------------------


def spread(dialogues: dict, every: int):
    return [dialogues[key] for key in sorted(dialogues)[::every]]


def multiwoz_hits(db, every=3):
    """(hits, named): system turns whose dialogue acts name a hotel, restaurant, attraction or
    train the database knows; a hit when the turn's gold state finds that entity."""
    hits = named = 0
    for split in ("val", "test"):
        for dialogue in spread(load_json(corpus_dir("multiwoz21_convlab2") / f"{split}.json.zip"), every):
            for turn in dialogue["log"]:
                state = calls.multiwoz_state(turn["metadata"])
                for act, pairs in (turn["dialog_act"] or {}).items() if turn["metadata"] else ():
                    domain = act.partition("-")[0].lower()
                    key = {"train": ("Id", "trainID")}.get(domain, ("Name", "name"))
                    if domain not in ("hotel", "restaurant", "attraction", "train"):
                        continue
                    for slot, value in pairs:
                        if slot != key[0]:
                            continue
                        entity = {r[key[1]] for r in db.query(domain, {key[1]: value})}
                        if entity:  # a name the database knows
                            named += 1
                            found = db.query(domain, calls.constraints(state.get(domain, {})))
                            hits += bool(entity & {r[key[1]] for r in found})
    return hits, named


def crosswoz_hits(db, every=3):
    """(hits, named): system turns informing an attraction, restaurant or hotel 名称, or a
    metro station; a hit when the turn's gold ``sys_state`` finds it."""
    hits = named = 0
    for split in ("val", "test"):
        for dialogue in spread(load_json(corpus_dir("crosswoz") / f"{split}.json.zip"), every):
            for message in dialogue["messages"]:
                if message["role"] != "sys":
                    continue
                state = calls.crosswoz_state(message["sys_state"])
                for intent, domain, slot, value in message["dialog_act"]:
                    if intent != "Inform":
                        continue
                    if slot == "名称" and domain in ("景点", "餐馆", "酒店"):
                        named += 1
                        hits += value in names(db.query(domain, state.get(domain, {})), "名称")
                    elif domain == "地铁" and slot.endswith("附近地铁站"):
                        named += 1
                        hits += db.answer(calls.make_call(calls.FIND, domain, state.get(domain, {}))).get(slot) == value
    return hits, named


def test_multiwoz_gold_states_find_the_entity_the_gold_reply_names(mw):
    hits, named = multiwoz_hits(mw)
    # observed 1287 / 1332 = 0.966 here (3905 / 4021 = 0.971 on every dialogue); the misses are
    # states that contradict the reply (a 3-star state, a 4-star hotel named) as mwzeval would count them
    assert named > 1200 and hits / named >= 0.96, (hits, named)


def test_crosswoz_gold_states_find_the_entity_the_gold_reply_names(cw):
    hits, named = crosswoz_hits(cw)
    assert named > 900 and hits / named >= 0.99, (hits, named)  # observed 983 / 986 = 0.997 (2874 / 2881 on all)


# --- the ParlAI agent -------------------------------------------------------------------------


class ScriptedUser(Agent):
    """Asks once for a taxi, then ends the episode."""

    def __init__(self, opt, shared=None):
        super().__init__(opt, shared)
        self.id, self.turns = "ScriptedUser", 0

    def act(self):
        self.turns += 1
        text = "USER: 叫辆出租" if self.turns == 1 else "USER: [DONE]"
        return {"id": self.id, "text": text, "episode_done": False}

    def reset(self):
        super().reset()
        self.turns = 0


class ScriptedSystem(Agent):
    """Calls find_出租 after the user's turn and repeats the response as its reply."""

    def __init__(self, opt, shared=None):
        super().__init__(opt, shared)
        self.id = "ScriptedSystem"

    def act(self):
        text = (self.observation or {}).get("text", "")
        if text.startswith("USER: 叫"):
            text = "APICALL: api_name = find_出租 ; 出发地 = 故宫 ; 目的地 = 颐和园"
        elif not text.startswith(calls.RESP):
            text = calls.CALL
        return {"id": self.id, "text": text, "episode_done": False}


def make_api_agent(**flags):
    from parlai.core.agents import create_agent
    from parlai.core.params import ParlaiParser

    opt = ParlaiParser(True, True).parse_kwargs(model="parlai_dialogft.tod.api_agent:DatabaseApiAgent", **flags)
    return create_agent(opt, requireModelExists=False)


def reply(agent, text):
    agent.observe({"text": text, "episode_done": False})
    return agent.act()["text"]


def test_the_agent_answers_a_call_text_with_a_response_text():
    agent = make_api_agent(tod_database="crosswoz")
    assert reply(agent, "APICALL: api_name = find_出租 ; 出发地 = 故宫 ; 目的地 = 颐和园") == \
        "APIRESP: count = 1 ; 车型 = #CX ; 车牌 = #CP"
    for silent in ("APICALL: ", "", "USER: hello", "APIS: "):
        assert reply(agent, silent) == "APIRESP: "


def test_the_agents_batch_copies_share_the_entities_and_keep_their_own_bookings():
    agent = make_api_agent(tod_database="multiwoz")
    share = agent.share()
    copies = [share["class"](copy.deepcopy(share["opt"]), share) for _ in range(2)]  # as TodWorld makes them
    text = reply(copies[0], calls.call_text(HOTEL_BOOKING))
    answer = calls.parse_resp(text)
    reference = answer["reference"]
    assert text.startswith(calls.RESP) and answer["booking"] == "confirmed" and REFERENCE.fullmatch(reference)
    assert copies[0].database.bookings(reference) and copies[1].database.bookings() == []
    assert copies[1].database.path == agent.database.path


def test_the_agent_is_the_api_responder_of_parlais_tod_world_script(tmp_path):
    from parlai.scripts.tod_world_script import TodWorldScript

    TodWorldScript.main(
        user_model="tests.test_tod_database:ScriptedUser", system_model="tests.test_tod_database:ScriptedSystem",
        api_resp_model="parlai_dialogft.tod.api_agent:DatabaseApiAgent", tod_database="crosswoz",
        num_episodes=2, batchsize=2, world_logs=str(tmp_path / "logs"), datapath=str(tmp_path / "data"),
    )
    episodes = [json.loads(line) for line in (tmp_path / "logs_conversations.jsonl").read_text().splitlines()]
    responses = [turn[2]["text"] for episode in episodes for turn in episode["dialog"] if len(turn) > 2]
    # per episode: the grounding turn (no call) and the taxi call
    assert responses == ["APIRESP: ", "APIRESP: count = 1 ; 车型 = #CX ; 车牌 = #CP"] * 2
