//! Export of a run's report as Markdown or JSON (shared by `boo/exportRun` and `boo export`).

use crate::runner::build_report_input;
use crate::store::{queries, Store, StoreError};
use std::path::PathBuf;

/// Returns (content, file name), or None for an unknown run. A run that is still
/// going is exported as it stands.
pub async fn export(
    store: &Store,
    run_id: &str,
    format: &str,
) -> Result<Option<(String, String)>, StoreError> {
    let id = run_id.to_string();
    let got = store
        .call(move |c| {
            let Some(run) = queries::get_run(c, &id)? else {
                return Ok(None);
            };
            let steps = queries::get_steps(c, &id)?;
            let attachments = queries::run_attachments(c, &id)?;
            Ok(Some((run, steps, attachments)))
        })
        .await?;
    let Some((run, steps, attachments)) = got else {
        return Ok(None);
    };
    let short: String = run
        .run
        .summary
        .run_id
        .chars()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let base = format!("boo-{}-{}", run.run.summary.flow, short);
    let content = match (format, &run.report, &run.report_json) {
        ("json", _, Some(j)) => j.clone(),
        ("markdown", Some(md), _) => md.clone(),
        _ => {
            let status = run.run.summary.status;
            let root = PathBuf::from(&run.run.summary.root);
            let (r2, s2) = (run.clone(), steps.clone());
            let input = tokio::task::spawn_blocking(move || {
                build_report_input(&r2, &s2, &root, status, &attachments).0
            })
            .await
            .map_err(|e| StoreError::Data(e.to_string()))?;
            if format == "json" {
                crate::report::render_json(&input)
            } else {
                crate::report::render_markdown(&input)
            }
        }
    };
    let ext = if format == "json" { "json" } else { "md" };
    Ok(Some((content, format!("{base}.{ext}"))))
}
