-- The per-query diff explorer and the runs table's changes (portable schema, JSON as TEXT).

-- One test query's passages with teacher and student scores and both top-10 lists
-- (a distillery_api::QueryDetail as JSON); its scores also go to query_results.
CREATE TABLE query_details (
    run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    query_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (run_id, query_id)
);

-- The paired before/after comparison of the compare stage: bootstrap 95 % CI of the change and
-- the randomization-test p-value, per metric (map, mrr@k, ndcg@k).
CREATE TABLE comparisons (
    run_id BIGINT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    metric TEXT NOT NULL,
    ci_low DOUBLE PRECISION NOT NULL,
    ci_high DOUBLE PRECISION NOT NULL,
    p_value DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, metric)
);

-- Denormalized from the student_before evaluation, for the runs table's changes (after - before).
ALTER TABLE runs ADD COLUMN before_map DOUBLE PRECISION;
ALTER TABLE runs ADD COLUMN before_mrr DOUBLE PRECISION;
ALTER TABLE runs ADD COLUMN before_ndcg DOUBLE PRECISION;
UPDATE runs SET
    before_map = (SELECT e.map FROM eval_results e WHERE e.run_id = runs.id AND e.label = 'student_before'),
    before_mrr = (SELECT e.mrr FROM eval_results e WHERE e.run_id = runs.id AND e.label = 'student_before'),
    before_ndcg = (SELECT e.ndcg FROM eval_results e WHERE e.run_id = runs.id AND e.label = 'student_before');
