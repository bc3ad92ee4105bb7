//! `wxgate simulate` and `wxgate verify-url`: act as the account's
//! platform against a server (WeChat's XML for WeChat kinds, the JSON
//! callbacks of Feishu, DingTalk and a 智能机器人 for theirs).

use std::process::ExitCode;
use std::time::Duration;

use super::{block_on, PartyArgs, SimulateArgs};
use crate::config::{AccountConfig, AccountKind, Mode};
use crate::platform::simulate::{self as sim, Kind, Parties, SimError, StreamSnapshot, Wait};

/// The sender and receiver of a simulated message.
pub(super) fn parties(args: &PartyArgs) -> Parties {
    Parties {
        from_user: args.from.clone(),
        to_user: args.to.clone(),
    }
}

/// Sends one message as the account's platform would and describes the answer.
pub(super) fn run(account: &AccountConfig, args: SimulateArgs) -> ExitCode {
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
    if !account.kind.is_wechat() {
        return run_json(account, &args, &kind);
    }
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
            Err(e) => fail(args.json, &e),
        }
    })
}

/// Sends one message to a Feishu, DingTalk or 智能机器人 path and
/// describes the answer (a stream's growth as it is refreshed).
fn run_json(account: &AccountConfig, args: &SimulateArgs, kind: &Kind) -> ExitCode {
    let platform = account.kind.as_str();
    if args.mode.is_some() {
        eprintln!("error: --mode is WeChat's encryption mode; a {platform} account's encryption follows its config");
        return ExitCode::from(2);
    }
    if let Err(e) = sim::check_kind(&account.kind, kind) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let Ok(wait) = Duration::try_from_secs_f64(args.wait) else {
        eprintln!("error: --wait takes a number of seconds, 0 or more");
        return ExitCode::from(2);
    };
    let wait = Wait {
        wait,
        ..Wait::default()
    };
    let parties = parties(&args.parties);
    let json = args.json;
    block_on(async move {
        if !json {
            println!("→ POST {} ({}, {})", args.url, platform, how(account, kind));
        }
        // Each refresh shows what it added to the content (all of it when
        // the content was replaced).
        let mut shown = String::new();
        let mut show = |s: &StreamSnapshot| {
            if json {
                return;
            }
            let grown = s.content.strip_prefix(shown.as_str()).unwrap_or(&s.content);
            println!(
                "  … {:.0} ms{}: {}",
                s.elapsed_ms,
                if s.finish { ", finished" } else { "" },
                grown
            );
            shown = s.content.clone();
        };
        match sim::send_json(account, &args.url, kind, &parties, wait, &mut show).await {
            Ok(reply) => {
                if json {
                    match serde_json::to_string_pretty(&reply) {
                        Ok(text) => println!("{text}"),
                        Err(e) => eprintln!("error: {e}"),
                    }
                } else {
                    print!("{}", sim::describe_json(&reply));
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(json, &e),
        }
    })
}

/// How a JSON platform's push is sealed, for the first line.
fn how(account: &AccountConfig, kind: &Kind) -> &'static str {
    match (&account.kind, kind) {
        (AccountKind::Feishu(s), _) if s.encrypt_key.is_some() => {
            "encrypted with the Encrypt Key, signed"
        }
        (AccountKind::Feishu(_), _) => "plain, with the Verification Token",
        (AccountKind::DingTalk, Kind::Event { .. }) => "encrypted event push",
        (AccountKind::DingTalk, _) => "robot message signed with the AppSecret",
        _ => "WeCom envelope, encrypted",
    }
}

fn fail(json: bool, e: &SimError) -> ExitCode {
    if json {
        println!("{}", serde_json::json!({ "error": e.to_string() }));
    }
    eprintln!("✗ {e}");
    ExitCode::FAILURE
}

/// Performs the account's URL verification against `url`.
pub(super) fn verify_url(account: &AccountConfig, url: &str) -> ExitCode {
    block_on(async {
        match sim::verify_url(account, url).await {
            Ok(echoed) => {
                match account.kind {
                    AccountKind::DingTalk => println!(
                        "✓ URL verification would pass: {url} answered check_url with the encrypted {echoed} (signature verified, decrypted for this app)"
                    ),
                    AccountKind::Feishu(_) => println!(
                        "✓ URL verification would pass: {url} echoed the challenge {echoed}"
                    ),
                    _ => println!("✓ URL verification would pass: {url} echoed {echoed} exactly"),
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("✗ URL verification would fail: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
