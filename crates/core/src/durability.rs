//! [`Durability`]: how hard a commit tries to reach the disk before it
//! returns. The store applies it; the node's and `up`'s command lines name
//! it (`--durability fsync|none`), so it lives in the shared vocabulary.

use serde::{Deserialize, Serialize};

/// How hard a commit tries to reach the disk before it returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// fsync before returning: nothing acknowledged is lost on a crash.
    #[default]
    Fsync,
    /// No fsync: for benchmarks only; a crash loses recent commits.
    None,
}

impl Durability {
    /// `fsync` or `none`, as the command line and `INFO` name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Fsync => "fsync",
            Durability::None => "none",
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "fsync" => Ok(Durability::Fsync),
            "none" => Ok(Durability::None),
            other => Err(format!("unknown durability `{other}`; use fsync or none")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        for d in [Durability::Fsync, Durability::None] {
            assert_eq!(d.to_string().parse::<Durability>(), Ok(d));
        }
        assert!("always".parse::<Durability>().is_err());
    }
}
