//! `wxgate simulate` and `wxgate verify-url`: act as WeChat against a server.

use std::process::ExitCode;

use super::{block_on, PartyArgs, SimulateArgs};
use crate::config::{AccountConfig, Mode};
use crate::platform::simulate::{self as sim, Kind, Parties};

/// The sender and receiver of a simulated message.
pub(super) fn parties(args: &PartyArgs) -> Parties {
    Parties {
        from_user: args.from.clone(),
        to_user: args.to.clone(),
    }
}

/// Sends one message as WeChat would and describes the reply.
pub(super) fn run(account: &AccountConfig, args: SimulateArgs) -> ExitCode {
    if !account.kind.is_wechat() {
        eprintln!(
            "error: simulate speaks WeChat's XML; for a {} account use verify-url (docs/platforms/{}.md shows a message push with curl)",
            account.kind.as_str(),
            account.kind.as_str()
        );
        return ExitCode::from(2);
    }
    let kind = match (&args.xml, &args.kind) {
        (Some(_), Some(_)) => {
            eprintln!("error: give a message kind or --xml FILE, not both");
            return ExitCode::from(2);
        }
        (Some(path), _) => match std::fs::read_to_string(path) {
            Ok(text) => Kind::Raw(text),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        (None, Some(kind)) => kind.to_kind(),
        (None, None) => {
            eprintln!(
                "error: say what to send: a message kind (text, image, event, …) or --xml FILE"
            );
            return ExitCode::from(2);
        }
    };
    let mode: Mode = args.mode.map(Into::into).unwrap_or(account.mode);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let xml = sim::build_xml(&kind, &parties(&args.parties), now);
    block_on(async {
        if !args.json {
            let how = if account.kind.is_wecom() {
                "WeCom, encrypted".to_owned()
            } else {
                format!("{} mode", mode.as_str())
            };
            println!("→ POST {} ({how})\n  {}", args.url, xml);
        }
        match sim::send(account, &args.url, mode, &xml).await {
            Ok(reply) => {
                if args.json {
                    match serde_json::to_string_pretty(&reply) {
                        Ok(text) => println!("{text}"),
                        Err(e) => eprintln!("error: {e}"),
                    }
                } else {
                    print!("{}", sim::describe(&reply));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                if args.json {
                    println!("{}", serde_json::json!({ "error": e.to_string() }));
                }
                eprintln!("✗ {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Performs WeChat's URL verification against `url`.
pub(super) fn verify_url(account: &AccountConfig, url: &str) -> ExitCode {
    block_on(async {
        match sim::verify_url(account, url).await {
            Ok(echostr) => {
                println!("✓ URL verification would pass: {url} echoed {echostr} exactly");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("✗ URL verification would fail: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
