-- Portable schema (see ARCHITECTURE.md): BIGINT ids, epoch-ms times, JSON as TEXT.
CREATE TABLE experiments (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL
);

CREATE TABLE runs (
    id BIGSERIAL PRIMARY KEY,
    experiment_id BIGINT REFERENCES experiments(id) ON DELETE SET NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]',
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX runs_created ON runs(created_ms);

CREATE TABLE stages (
    id BIGSERIAL PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    progress DOUBLE PRECISION NOT NULL DEFAULT 0,
    attempt BIGINT NOT NULL DEFAULT 0,
    runner TEXT,
    message TEXT,
    started_ms BIGINT,
    finished_ms BIGINT,
    UNIQUE (run_id, kind)
);
