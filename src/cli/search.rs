//! `cfgsnap search`: the API's search from the shell, over one tenant's
//! devices (the only tenant when there is one). An operators' tool like
//! `show`: it matches and prints configurations with their secrets.
//! Prints every page, grep-like: `device:line: text` for the newest
//! versions, one line's life per line with `--history`.

use std::io::Write as _;

use super::Exit;
use crate::config::{Fleet, Settings};
use crate::search::{self, Items, Request, Scope, Searcher};
use crate::store::Store;
use crate::store::history::Secrets;

/// What `cfgsnap search` was asked.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// The text to look for (a literal unless --regex).
    pub query: String,
    /// QUERY is a regular expression.
    #[arg(long)]
    pub regex: bool,
    /// When matching lines appeared and went, through every stored version.
    #[arg(long)]
    pub history: bool,
    /// Only devices whose id matches this id or glob (`*`, `?`).
    #[arg(long, value_name = "GLOB")]
    pub device: Option<String>,
    /// Match regardless of case.
    #[arg(long, short = 'i')]
    pub ignore_case: bool,
    /// The tenant; required when the configuration has more than one.
    #[arg(long)]
    pub tenant: Option<String>,
    /// One JSON object per hit instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the search and prints every hit.
///
/// # Errors
/// An unreachable store or a failed write to stdout.
pub(super) async fn run(
    settings: &Settings,
    fleet: &Fleet,
    args: SearchArgs,
) -> anyhow::Result<Exit> {
    let tenant = match (&args.tenant, fleet.tenants.as_slice()) {
        (Some(t), _) => match fleet.tenants.iter().find(|x| x.id.as_str() == t) {
            Some(found) => found.id.to_string(),
            None => {
                eprintln!("error[not_found]: no tenant {t:?} in the configuration");
                return Ok(Exit::Failed);
            }
        },
        (None, [only]) => only.id.to_string(),
        (None, _) => {
            eprintln!("error[usage]: the configuration has several tenants: give --tenant");
            return Ok(Exit::Usage);
        }
    };
    let mut request = Request {
        q: args.query,
        regex: args.regex,
        ignore_case: args.ignore_case,
        scope: if args.history {
            Scope::History
        } else {
            Scope::Current
        },
        device: args.device,
        limit: Some(search::query::MAX_LIMIT),
        ..Request::default()
    };
    if let Err(search::Error::BadQuery(detail)) = search::Query::parse(&request) {
        eprintln!("error[bad_query]: {detail}");
        return Ok(Exit::Usage);
    }
    let store = Store::connect(&settings.store).await?;
    let searcher = Searcher::new(store.clone(), &settings.search);
    let result = print_all(&searcher, &tenant, &mut request, args.json).await;
    store.close().await;
    result
}

async fn print_all(
    searcher: &Searcher,
    tenant: &str,
    request: &mut Request,
    json: bool,
) -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    let mut partial = false;
    loop {
        let query = search::Query::parse(request)?;
        let page = searcher.search(tenant, &query, Secrets::Shown).await?;
        partial |= page.partial;
        match &page.items {
            Items::Current(hits) => {
                for h in hits {
                    match json {
                        true => writeln!(out, "{}", serde_json::to_string(h)?)?,
                        false => writeln!(out, "{}:{}: {}", h.device_id, h.line_no, h.line)?,
                    }
                }
            }
            Items::History(lives) => {
                for l in lives {
                    if json {
                        writeln!(out, "{}", serde_json::to_string(l)?)?;
                        continue;
                    }
                    let added = format!(
                        "{}#{} {}",
                        if l.added_earlier { "≤" } else { "+" },
                        l.added_in.snapshot_id,
                        l.added_in.collected_at.format("%Y-%m-%d %H:%M")
                    );
                    let removed = l.removed_in.map_or("present".to_owned(), |r| {
                        format!(
                            "-#{} {}",
                            r.snapshot_id,
                            r.collected_at.format("%Y-%m-%d %H:%M")
                        )
                    });
                    writeln!(out, "{}  {added}  {removed}  {}", l.device_id, l.line)?;
                }
            }
        }
        match page.next_cursor {
            Some(cursor) if !page.partial => request.cursor = Some(cursor),
            _ => break,
        }
    }
    if partial {
        eprintln!("warning: the search ran out of [search] deadline; the hits above are partial");
        return Ok(Exit::Failed);
    }
    Ok(Exit::Ok)
}
