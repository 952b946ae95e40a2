"""`--task-db shop.sqlite`: a company's own SQLite file answers the model's calls, and stays as it was."""

import hashlib
import logging
import sqlite3

import pytest
from parlai.core.message import Message

from parlai_dialogft.tod import calls
from tests.support.agents import make_agent
from tests.support.tod_agents import script_rounds

DATAPATH = "/tmp/dialogft-test-data"
PRODUCTS = [("Trail Boot", "red", 89.5, 3), ("City Shoe", "Black", 59.0, 0), ("Rain Boot", "red", 45.0, 12)]


@pytest.fixture
def shop(tmp_path):
    path = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE products (name TEXT, colour TEXT, price REAL, stock INTEGER)")
        conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", PRODUCTS)
        conn.execute("CREATE TABLE stores (city TEXT, phone TEXT)")
        conn.execute("INSERT INTO stores VALUES ('Leeds', '0113 496 0000')")
    conn.close()
    return path


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_each_table_answers_find_calls_on_its_columns(shop):
    from parlai_dialogft.tod.database import open_databases

    db = open_databases(str(shop))
    red = db.answer({"api_name": "find_products", "colour": " RED "})
    assert red == {"count": "2", "name": "Trail Boot", "colour": "red", "price": "89.5", "stock": "3"}
    assert db.answer({"api_name": "find_products", "price": "45"})["name"] == "Rain Boot"
    assert db.answer({"api_name": "find_stores", "city": "leeds"})["phone"] == "0113 496 0000"
    assert db.answer({"api_name": "find_products", "colour": "green"}) == {"count": "0"}


def test_a_users_file_and_a_shipped_database_serve_one_model(shop):
    from parlai_dialogft.tod.database import open_databases

    db = open_databases(f"multiwoz,{shop}")
    assert db.answer({"api_name": "find_products", "colour": "black"})["name"] == "City Shoe"
    assert int(db.answer({"api_name": "find_hotel", "area": "north"})["count"]) > 0


def test_bad_calls_get_count_0_a_log_line_and_leave_the_file_unchanged(shop, caplog):
    from parlai_dialogft.tod.database import open_databases

    before = digest(shop)
    db = open_databases(str(shop))
    with caplog.at_level(logging.WARNING):
        injected = db.answer({"api_name": "find_products", "colour": "red' OR '1'='1"})
        no_table = db.answer({"api_name": "find_orders", "id": "1"})
        no_column = db.answer({"api_name": "find_products", "colour": "red", "size); DROP TABLE products; --": "9"})
        booking = db.answer({"api_name": "book_products", "name": "Trail Boot"})
    assert injected == {"count": "0"} and no_table == {"count": "0"} and booking == {"count": "0"}
    assert no_column["count"] == "2"  # the unknown slot is dropped, the known one still searched
    assert "cannot answer APICALL: api_name = book_products" in caplog.text and "not searchable" in caplog.text
    assert digest(shop) == before
    with pytest.raises(sqlite3.OperationalError, match="readonly"):  # the connection itself cannot write
        db.databases[0]._conn.execute("DELETE FROM products")
    assert sqlite3.connect(shop).execute("SELECT count(*) FROM products").fetchone() == (3,)


@pytest.mark.parametrize("spec, message", [
    ("missing.sqlite", "--task-db missing.sqlite: no such file"),
    ("shop.txt", "--task-db shop.txt: no such database 'shop.txt'; choose from multiwoz, crosswoz, or a SQLite file"),
])
def test_a_file_that_is_not_a_database_is_named(tmp_path, spec, message, monkeypatch):
    from parlai_dialogft.tod.database import UnknownDatabaseError, open_databases

    monkeypatch.chdir(tmp_path)
    (tmp_path / "shop.txt").write_text("not a database")
    with pytest.raises(UnknownDatabaseError) as err:
        open_databases(spec)
    assert str(err.value).startswith(message)


def test_a_file_with_text_in_it_is_refused_by_name(tmp_path):
    from parlai_dialogft.tod.database import UnknownDatabaseError, open_databases

    path = tmp_path / "notes.db"
    path.write_text("these are notes, not SQLite")
    with pytest.raises(UnknownDatabaseError, match=f"--task-db {path}: not a readable SQLite database"):
        open_databases(str(path))


def test_in_the_loop_the_model_reads_the_row_its_call_found(shop, monkeypatch):
    call = calls.call_text({"api_name": "find_products", "colour": "red"})
    read = script_rounds(monkeypatch, call, "We have the Trail Boot in red .")
    agent = make_agent("zoo:dialogft/bilingual_t5", task_db=str(shop), datatype="valid", datapath=DATAPATH)
    agent.observe(Message({"text": "Do you have red boots ?", "episode_done": False}))
    reply = agent.act()
    assert reply["text"] == "We have the Trail Boot in red ."
    assert reply["tod_result"] == "APIRESP: colour = red ; count = 2 ; name = Trail Boot ; price = 89.5 ; stock = 3"
    assert read["context"].endswith(call + "\n" + reply["tod_result"])
