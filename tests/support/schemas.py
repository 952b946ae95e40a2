"""The tables of the package's SQLite files at schema version 1, as releases before the
version stamp wrote them: a test makes an old file with them and opens it with today's code.
"""

#: The serving log's tables at version 1 (replies and thumbs), as releases before drafts wrote them.
SERVING_LOG_V1_SCHEMA = """
CREATE TABLE replies (
    id TEXT PRIMARY KEY, created REAL NOT NULL, model TEXT NOT NULL, messages TEXT NOT NULL,
    reply TEXT NOT NULL, finish_reason TEXT NOT NULL, prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, latency_s REAL NOT NULL
);
CREATE INDEX replies_created ON replies (created);
CREATE TABLE feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reply_id TEXT NOT NULL REFERENCES replies (id) ON DELETE CASCADE,
    created REAL NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT NOT NULL DEFAULT ''
);
CREATE INDEX feedback_reply ON feedback (reply_id);
"""

#: The study's tables at version 1 (ACUTE and live chat), as releases before the per-turn task wrote them.
STUDY_V1_SCHEMA = """
CREATE TABLE workers (worker_id TEXT PRIMARY KEY, platform TEXT NOT NULL, token TEXT, created REAL NOT NULL,
    onboarding TEXT NOT NULL DEFAULT 'pending', completion_code TEXT, finished REAL);
CREATE TABLE sessions (session TEXT PRIMARY KEY, worker_id TEXT NOT NULL REFERENCES workers(worker_id),
    protocol TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE blocklist (worker_id TEXT PRIMARY KEY, reason TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE flags (worker_id TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE pairings (pair_id TEXT PRIMARY KEY, kind TEXT NOT NULL, model_a TEXT NOT NULL, model_b TEXT NOT NULL,
    correct_answer TEXT, data TEXT NOT NULL);
CREATE TABLE assignments (assignment_id TEXT PRIMARY KEY, worker_id TEXT NOT NULL,
    pair_id TEXT NOT NULL REFERENCES pairings(pair_id), question TEXT NOT NULL, left_model TEXT NOT NULL,
    position INTEGER NOT NULL, task_no INTEGER NOT NULL, created REAL NOT NULL, shown REAL,
    done INTEGER NOT NULL DEFAULT 0, UNIQUE (worker_id, pair_id));
CREATE TABLE judgments (judgment_id TEXT PRIMARY KEY,
    assignment_id TEXT NOT NULL UNIQUE REFERENCES assignments(assignment_id), worker_id TEXT NOT NULL,
    pair_id TEXT NOT NULL, question TEXT NOT NULL, model_a TEXT NOT NULL, model_b TEXT NOT NULL, winner TEXT NOT NULL,
    left_model TEXT NOT NULL, justification TEXT NOT NULL, duration_s REAL NOT NULL, is_onboarding INTEGER NOT NULL,
    is_attention_check INTEGER NOT NULL, passed_check INTEGER, created REAL NOT NULL);
CREATE TABLE chats (chat_id TEXT PRIMARY KEY, worker_id TEXT NOT NULL, model TEXT NOT NULL,
    target_turns INTEGER NOT NULL, created REAL NOT NULL, finished REAL, duration_s REAL, ratings TEXT,
    low_effort INTEGER NOT NULL DEFAULT 0);
CREATE TABLE chat_turns (chat_id TEXT NOT NULL REFERENCES chats(chat_id), idx INTEGER NOT NULL,
    speaker TEXT NOT NULL, text TEXT NOT NULL, problems TEXT, created REAL NOT NULL, PRIMARY KEY (chat_id, idx));
"""
