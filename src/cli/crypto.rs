//! `wxgate crypto`: encrypt, decrypt and sign as the account, for
//! debugging captured traffic.

use std::io::Read;
use std::process::ExitCode;

use super::{CryptoCommand, EXIT_CONFIG};
use crate::config::AccountConfig;

fn read_stdin() -> String {
    let mut text = String::new();
    let _ = std::io::stdin().read_to_string(&mut text);
    text.trim_end_matches(['\r', '\n']).to_owned()
}

/// Encrypts, decrypts or signs with the account's secrets.
pub(super) fn run(account: &AccountConfig, command: CryptoCommand) -> ExitCode {
    let token = account.token.expose();
    let Some(crypto) = account.crypto.as_ref() else {
        if let CryptoCommand::Sign {
            timestamp,
            nonce,
            encrypt,
        } = &command
        {
            return sign(token, timestamp, nonce, encrypt.as_deref());
        }
        eprintln!("error: account.encoding_aes_key and app_id are needed (in the config or the environment)");
        return ExitCode::from(EXIT_CONFIG);
    };
    match command {
        CryptoCommand::Encrypt { message } => {
            println!("{}", crypto.encrypt(&message.unwrap_or_else(read_stdin)));
            ExitCode::SUCCESS
        }
        CryptoCommand::Decrypt { input } => {
            let input = input.unwrap_or_else(read_stdin);
            let encrypt = match crate::message::envelope::parse_encrypted(input.as_bytes()) {
                Ok(Some(body)) => body.encrypt,
                _ => input.trim().to_owned(),
            };
            match crypto.decrypt_parts(&encrypt) {
                Ok((msg, receive_id)) => {
                    if receive_id != crypto.receive_id() {
                        eprintln!(
                            "warning: receive id is {receive_id:?}, not the configured app_id {:?}",
                            crypto.receive_id()
                        );
                    }
                    println!("{msg}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("✗ cannot decrypt: {e} (WXBizMsgCrypt code {})", e.code());
                    ExitCode::FAILURE
                }
            }
        }
        CryptoCommand::Sign {
            timestamp,
            nonce,
            encrypt,
        } => sign(token, &timestamp, &nonce, encrypt.as_deref()),
    }
}

fn sign(token: &str, timestamp: &str, nonce: &str, encrypt: Option<&str>) -> ExitCode {
    match encrypt {
        Some(e) => println!(
            "{}",
            crate::crypto::msg_signature(token, timestamp, nonce, e)
        ),
        None => println!("{}", crate::crypto::signature(token, timestamp, nonce)),
    }
    ExitCode::SUCCESS
}
