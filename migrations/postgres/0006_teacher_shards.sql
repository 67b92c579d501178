-- Teacher scoring cut into shards (RunConfig.teacher_shards): a stage may have several jobs,
-- one per shard, so jobs.stage_id is no longer unique. Each job records its shard (index of
-- count) and its own progress (a sharded stage's progress is the mean over its shards).
ALTER TABLE jobs DROP CONSTRAINT jobs_stage_id_key;
CREATE INDEX jobs_stage ON jobs(stage_id);
ALTER TABLE jobs ADD COLUMN shard_index BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN shard_count BIGINT NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN progress DOUBLE PRECISION NOT NULL DEFAULT 0;
UPDATE jobs SET progress = s.progress FROM stages s WHERE s.id = jobs.stage_id;

-- Log lines are numbered per job attempt: shards of one stage are different jobs, so the
-- idempotency key becomes (job, attempt, seq). Until now a stage had exactly one job.
ALTER TABLE stage_logs ADD COLUMN job_id BIGINT NOT NULL DEFAULT 0;
UPDATE stage_logs SET job_id = j.id FROM jobs j WHERE j.stage_id = stage_logs.stage_id;
ALTER TABLE stage_logs DROP CONSTRAINT stage_logs_stage_id_attempt_seq_key;
ALTER TABLE stage_logs ADD CONSTRAINT stage_logs_job_attempt_seq UNIQUE (job_id, attempt, seq);
