-- Log lines runners stream while a stage runs, one row per line, idempotent on
-- (stage, attempt, seq).
CREATE TABLE stage_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    stage_id BIGINT NOT NULL REFERENCES stages(id) ON DELETE CASCADE,
    attempt BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    time_ms BIGINT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    UNIQUE (stage_id, attempt, seq)
);
CREATE INDEX stage_logs_run ON stage_logs(run_id, id);

-- Claims a runner gave back (POST /jobs/{id}/release); they do not count toward the limit of
-- expired attempts.
ALTER TABLE jobs ADD COLUMN releases BIGINT NOT NULL DEFAULT 0;
