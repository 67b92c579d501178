-- Domain tables (portable schema: BIGINT ids, epoch-ms times, JSON as TEXT).
ALTER TABLE runs ADD COLUMN manifest TEXT NOT NULL DEFAULT '{}';
-- Denormalized from config and the student_after evaluation, for filters and sorting.
ALTER TABLE runs ADD COLUMN teacher TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN student TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN dataset TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN metric_map DOUBLE PRECISION;
ALTER TABLE runs ADD COLUMN metric_mrr DOUBLE PRECISION;
ALTER TABLE runs ADD COLUMN metric_ndcg DOUBLE PRECISION;
CREATE INDEX runs_status ON runs(status);
CREATE INDEX runs_teacher ON runs(teacher);
CREATE INDEX runs_student ON runs(student);
CREATE INDEX runs_dataset ON runs(dataset);

CREATE TABLE run_tags (
    run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (run_id, tag)
);
CREATE INDEX run_tags_tag ON run_tags(tag);

ALTER TABLE stages ADD COLUMN checkpoint TEXT;

CREATE TABLE runners (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    device TEXT NOT NULL DEFAULT '',
    memory_bytes BIGINT NOT NULL DEFAULT 0,
    registered_ms BIGINT NOT NULL,
    last_heartbeat_ms BIGINT NOT NULL
);

-- One job per stage. status: blocked (dependencies pending), ready, leased, done, skipped,
-- failed, cancelled.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    stage_id BIGINT NOT NULL UNIQUE REFERENCES stages(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt BIGINT NOT NULL DEFAULT 0,
    runner_id BIGINT REFERENCES runners(id) ON DELETE SET NULL,
    lease TEXT,
    lease_ms BIGINT NOT NULL DEFAULT 60000,
    lease_until_ms BIGINT,
    created_ms BIGINT NOT NULL
);
CREATE INDEX jobs_status ON jobs(status, id);
CREATE INDEX jobs_run ON jobs(run_id);

CREATE TABLE metrics (
    run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    stage_id BIGINT NOT NULL REFERENCES stages(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    step BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    time_ms BIGINT NOT NULL,
    PRIMARY KEY (stage_id, name, step)
);
-- Covers series reads (value included) so they never touch the table.
CREATE INDEX metrics_run_name ON metrics(run_id, name, step, value);

CREATE TABLE eval_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    stage_id BIGINT NOT NULL REFERENCES stages(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    at_k BIGINT NOT NULL,
    map DOUBLE PRECISION NOT NULL,
    mrr DOUBLE PRECISION NOT NULL,
    ndcg DOUBLE PRECISION NOT NULL,
    n_queries BIGINT NOT NULL,
    n_pairs BIGINT NOT NULL,
    ci TEXT NOT NULL DEFAULT 'null',
    created_ms BIGINT NOT NULL,
    UNIQUE (run_id, label)
);

CREATE TABLE query_results (
    run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    query_id TEXT NOT NULL,
    query TEXT NOT NULL DEFAULT '',
    ap DOUBLE PRECISION NOT NULL,
    rr DOUBLE PRECISION NOT NULL,
    ndcg DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, label, query_id)
);

CREATE TABLE artifacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    stage_id BIGINT NOT NULL REFERENCES stages(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    path TEXT,
    content BLOB,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX artifacts_run ON artifacts(run_id);

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

-- Secrets are stored as hex SHA-256 of the token. kind: session, api, share.
CREATE TABLE secrets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    run_id BIGINT REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT
);
