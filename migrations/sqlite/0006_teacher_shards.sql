-- Teacher scoring cut into shards (RunConfig.teacher_shards): a stage may have several jobs,
-- one per shard, so jobs.stage_id is no longer unique. SQLite cannot drop a constraint, so the
-- table is rebuilt with the same columns plus the shard (index of count) and the job's own
-- progress (a sharded stage's progress is the mean over its shards).
CREATE TABLE jobs_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    stage_id BIGINT NOT NULL REFERENCES stages(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt BIGINT NOT NULL DEFAULT 0,
    runner_id BIGINT REFERENCES runners(id) ON DELETE SET NULL,
    lease TEXT,
    lease_ms BIGINT NOT NULL DEFAULT 60000,
    lease_until_ms BIGINT,
    created_ms BIGINT NOT NULL,
    releases BIGINT NOT NULL DEFAULT 0,
    shard_index BIGINT NOT NULL DEFAULT 0,
    shard_count BIGINT NOT NULL DEFAULT 1,
    progress DOUBLE PRECISION NOT NULL DEFAULT 0
);
INSERT INTO jobs_new (id, run_id, stage_id, kind, status, attempt, runner_id, lease, lease_ms,
                      lease_until_ms, created_ms, releases, progress)
SELECT j.id, j.run_id, j.stage_id, j.kind, j.status, j.attempt, j.runner_id, j.lease, j.lease_ms,
       j.lease_until_ms, j.created_ms, j.releases,
       COALESCE((SELECT s.progress FROM stages s WHERE s.id = j.stage_id), 0)
FROM jobs j;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_status ON jobs(status, id);
CREATE INDEX jobs_run ON jobs(run_id);
CREATE INDEX jobs_stage ON jobs(stage_id);

-- Log lines are numbered per job attempt: shards of one stage are different jobs, so the
-- idempotency key becomes (job, attempt, seq). Until now a stage had exactly one job.
CREATE TABLE stage_logs_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    stage_id BIGINT NOT NULL REFERENCES stages(id) ON DELETE CASCADE,
    job_id BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    time_ms BIGINT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    UNIQUE (job_id, attempt, seq)
);
INSERT INTO stage_logs_new (id, run_id, stage_id, job_id, attempt, seq, time_ms, level, message)
SELECT l.id, l.run_id, l.stage_id,
       COALESCE((SELECT j.id FROM jobs j WHERE j.stage_id = l.stage_id), 0),
       l.attempt, l.seq, l.time_ms, l.level, l.message
FROM stage_logs l;
DROP TABLE stage_logs;
ALTER TABLE stage_logs_new RENAME TO stage_logs;
CREATE INDEX stage_logs_run ON stage_logs(run_id, id);
