-- Wall time and throughput of a stage's work as its runner(s) reported them
-- (api::StageStats as JSON text; shards of one stage merged).
ALTER TABLE stages ADD COLUMN stats TEXT;
