//! The encryption mode of an account (the console's 消息加解密方式).

/// How the account's messages are encrypted (the console's 消息加解密方式).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 明文模式: plain XML, `signature` only.
    Plain,
    /// 兼容模式: plain and encrypted both accepted.
    Compatible,
    /// 安全模式: encrypted only.
    Safe,
}

impl Mode {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Compatible => "compatible",
            Mode::Safe => "safe",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "plain" => Ok(Mode::Plain),
            "compatible" => Ok(Mode::Compatible),
            "safe" => Ok(Mode::Safe),
            other => Err(format!(
                "mode must be plain, compatible or safe, not {other:?}"
            )),
        }
    }
}
