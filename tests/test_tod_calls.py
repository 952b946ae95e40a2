"""A belief state becomes ParlAI's ``APICALL:`` text, and the text reads back to the same call."""

from parlai.core.tod.tod_core import SerializationHelpers

from parlai_dialogft.tod import calls


def test_a_call_reads_back_whole_even_a_value_with_a_comma():
    call = {"api_name": "find_hotel", "area": "north", "address": "regent street , city centre", "name": "a, b"}
    text = calls.call_text(call)
    assert text == "APICALL: address = regent street , city centre ; api_name = find_hotel ; area = north ; name = a, b"
    assert calls.parse_call(text) == call
    # ParlAI's own reader turns "a, b" into a set: the gold and the prediction would differ.
    assert SerializationHelpers.str_to_api_dict(text[len("APICALL: "):])["name"] == {"a", "b"}


def test_the_text_is_parlais_so_its_metrics_read_it():
    call = {"api_name": "find_hotel", "area": "north", "stars": "4"}
    assert calls.call_text(call) == "APICALL: " + SerializationHelpers.api_dict_to_str(call)


def test_a_multiwoz_state_keeps_what_the_user_asked_for_and_not_the_bookings_made():
    metadata = {
        "hotel": {"book": {"booked": [{"name": "acorn", "reference": "X1"}], "people": "2", "day": "", "stay": "3"},
                  "semi": {"area": "north", "pricerange": "not mentioned", "parking": "yes", "type": "", "stars": "don't care"}},
        "police": {"book": {"booked": []}, "semi": {}},
    }
    assert calls.multiwoz_state(metadata) == {
        "hotel": {"area": "north", "parking": "yes", "stars": "dontcare", "book_people": "2", "book_stay": "3"}}
    assert calls.multiwoz_booked(metadata) == {"hotel": 1, "police": 0}


def test_a_turn_calls_the_domain_whose_state_changed_and_books_where_a_booking_was_made():
    before = {"hotel": {"area": "north"}}
    after = {"hotel": {"area": "north"}, "restaurant": {"food": "thai"}}
    assert calls.turn_call(before, before) == {}
    assert calls.turn_call(before, after) == {"api_name": "find_restaurant", "food": "thai"}
    both = {"hotel": {"area": "south"}, "restaurant": {"food": "thai"}}
    assert calls.turn_call(before, both, hint=["restaurant"])["api_name"] == "find_restaurant"
    assert calls.turn_call(before, both)["api_name"] == "find_hotel"
    assert calls.turn_call(after, after, booked=["hotel"]) == {"api_name": "book_hotel", "area": "north"}


def test_a_call_splits_into_what_to_find_and_what_to_book():
    call = {"api_name": "book_hotel", "area": "north", "book_people": "2", "book_day": "friday"}
    assert calls.action_and_domain(call) == ("book", "hotel")
    assert calls.constraints(call) == {"area": "north"}
    assert calls.booking(call) == {"people": "2", "day": "friday"}
    assert calls.action_and_domain({"area": "north"}) == ("", "")


def test_calls_accumulate_into_a_belief_state():
    state = calls.accumulate({}, {"api_name": "find_hotel", "area": "north"})
    state = calls.accumulate(state, {"api_name": "find_restaurant", "food": "thai"})
    state = calls.accumulate(state, {"api_name": "book_hotel", "area": "north", "book_people": "2"})
    assert state == {"hotel": {"area": "north", "book_people": "2"}, "restaurant": {"food": "thai"}}
    assert calls.accumulate(state, {}) == state


def test_a_crosswoz_state_leaves_out_the_selected_results():
    sys_state = {"餐馆": {"名称": "", "推荐菜": ["驴肉", "烧饼"], "评分": "4.5分以上", "selectedResults": ["讲礼驴肉馆"]},
                 "酒店": {"名称": "", "selectedResults": []}}
    assert calls.crosswoz_state(sys_state) == {"餐馆": {"推荐菜": "驴肉 烧饼", "评分": "4.5分以上"}}
