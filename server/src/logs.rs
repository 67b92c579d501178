//! Stage logs: the lines a runner streams while a stage runs (`POST /jobs/{id}/logs`), stored
//! idempotently on (job, attempt, seq) (a sharded stage has one job per shard) and read back as a tail (`GET /runs/{id}/logs`).

use distillery_api::{Event, LogBatch, StageKind, StageLogLine};
use sqlx::{AssertSqlSafe, Row};

use crate::error::AppError;
use crate::store::{stage_kind_at, Store};

/// Most lines accepted in one batch.
pub const MAX_LOG_BATCH: usize = 1000;
/// Longest stored line, in bytes; longer lines are cut at a character boundary.
pub const MAX_LOG_LINE: usize = 2000;
/// Most lines one tail request returns.
pub const MAX_TAIL: i64 = 5000;
/// Lines inserted per statement (8 parameters each).
const LOG_CHUNK: usize = 250;

const LEVELS: [&str; 5] = ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"];

fn clip(message: &str) -> String {
    if message.len() <= MAX_LOG_LINE {
        return message.to_string();
    }
    let mut end = MAX_LOG_LINE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

impl Store {
    /// Stores a batch of log lines of the job's current attempt; a line already stored for
    /// (job, attempt, seq) is kept as is. Returns how many lines were new.
    pub async fn report_logs(&self, job_id: i64, b: &LogBatch) -> Result<u64, AppError> {
        if b.lines.len() > MAX_LOG_BATCH {
            return Err(AppError::bad(
                "lines",
                format!("at most {MAX_LOG_BATCH} lines per batch"),
            ));
        }
        for (i, l) in b.lines.iter().enumerate() {
            if !LEVELS.contains(&l.level.as_str()) {
                return Err(AppError::bad(
                    &format!("lines[{i}].level"),
                    "must be ERROR, WARN, INFO, DEBUG or TRACE",
                ));
            }
            if l.seq < 0 {
                return Err(AppError::bad(
                    &format!("lines[{i}].seq"),
                    "must not be negative",
                ));
            }
        }
        let mut tx = self.begin_write().await?;
        let job = self.check_lease(&mut tx, job_id, &b.lease).await?;
        let attempt: i64 = sqlx::query("SELECT attempt FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let mut inserted = 0;
        for chunk in b.lines.chunks(LOG_CHUNK) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let p: Vec<String> = (1..=8).map(|k| format!("${}", i * 8 + k)).collect();
                    format!("({})", p.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO stage_logs (run_id, stage_id, job_id, attempt, seq, time_ms, level, \
                 message) VALUES {} ON CONFLICT (job_id, attempt, seq) DO NOTHING",
                rows.join(", ")
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for l in chunk {
                q = q
                    .bind(job.run_id)
                    .bind(job.stage_id)
                    .bind(job.id)
                    .bind(attempt)
                    .bind(l.seq)
                    .bind(l.time_ms)
                    .bind(l.level.clone())
                    .bind(clip(&l.message));
            }
            inserted += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        if inserted > 0 {
            self.events().publish(Event::Log {
                run_id: job.run_id,
                stage_id: job.stage_id,
                kind: job.kind,
                attempt,
                lines: b.lines.clone(),
            });
        }
        Ok(inserted)
    }

    /// The last `tail` log lines of a run, oldest first, of one stage kind or of all stages.
    pub async fn run_logs(
        &self,
        run_id: i64,
        stage: Option<StageKind>,
        tail: i64,
    ) -> Result<Vec<StageLogLine>, AppError> {
        if !(1..=MAX_TAIL).contains(&tail) {
            return Err(AppError::bad(
                "tail",
                format!("must be between 1 and {MAX_TAIL}"),
            ));
        }
        self.get_run(run_id).await?;
        let stage_sql = if stage.is_some() {
            " AND s.kind = $3"
        } else {
            ""
        };
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "SELECT l.stage_id, s.kind, l.attempt, l.seq, l.time_ms, l.level, l.message \
             FROM stage_logs l JOIN stages s ON s.id = l.stage_id \
             WHERE l.run_id = $1{stage_sql} ORDER BY l.id DESC LIMIT $2"
        )))
        .bind(run_id)
        .bind(tail);
        if let Some(kind) = stage {
            q = q.bind(kind.as_str());
        }
        let rows = q.fetch_all(self.pool()).await?;
        let mut lines = rows
            .iter()
            .map(|r| {
                Ok(StageLogLine {
                    stage_id: r.try_get(0)?,
                    kind: stage_kind_at(r, 1, "stage kind")?,
                    attempt: r.try_get(2)?,
                    seq: r.try_get(3)?,
                    time_ms: r.try_get(4)?,
                    level: r.try_get(5)?,
                    message: r.try_get(6)?,
                })
            })
            .collect::<Result<Vec<_>, AppError>>()?;
        lines.reverse();
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_at_a_character_boundary() {
        let line = "é".repeat(MAX_LOG_LINE);
        let cut = clip(&line);
        assert!(cut.len() <= MAX_LOG_LINE + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }
}
