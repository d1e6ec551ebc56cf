//! The glibc baseline a bundle targets, as a type, and the table of the
//! distributions whose glibc releases hermetic knows (`images/distros.toml`,
//! embedded).
//!
//! A leaf: nothing here talks to an engine or reads the catalog. Everything
//! that carries a baseline (plan, ELF policy, bundle metadata, build record,
//! provenance) carries a [`Glibc`], which serialises as `"2.31"`, so the
//! documents hermetic writes read the same as when it was a string.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The distribution table, as shipped.
const DISTROS_TOML: &str = include_str!("../images/distros.toml");

/// A glibc version such as 2.31: the baseline a bundle targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Glibc {
    /// Always 2 (glibc has had no other major version).
    pub major: u32,
    /// The release, e.g. 31 for 2.31.
    pub minor: u32,
}

impl Glibc {
    /// A baseline from its two numbers.
    pub const fn new(major: u32, minor: u32) -> Glibc {
        Glibc { major, minor }
    }

    /// The distribution whose glibc release this is, if hermetic knows one.
    pub fn distro(self) -> Option<&'static Distro> {
        distros().iter().find(|d| d.glibc == self)
    }

    /// The distribution id for purl `distro=` qualifiers (`debian-11`, …),
    /// `linux` for a release no known distribution carries.
    pub fn distro_id(self) -> &'static str {
        self.distro().map_or("linux", |d| d.id.as_str())
    }
}

impl FromStr for Glibc {
    type Err = GlibcError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || GlibcError::BadBaseline {
            value: s.to_string(),
        };
        let (major, minor) = s.trim().split_once('.').ok_or_else(bad)?;
        let major: u32 = major.parse().map_err(|_| bad())?;
        let minor: u32 = minor.parse().map_err(|_| bad())?;
        if major != 2 {
            return Err(bad());
        }
        Ok(Glibc { major, minor })
    }
}

impl TryFrom<String> for Glibc {
    type Error = GlibcError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Glibc> for String {
    fn from(g: Glibc) -> String {
        g.to_string()
    }
}

impl fmt::Display for Glibc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Which package manager a distribution uses, and so which package names a
/// recipe must give for builders of that distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageFamily {
    /// Debian and derivatives: apt, dpkg, `-dev` packages.
    Deb,
    /// RHEL and derivatives: dnf/yum, rpm, `-devel` packages.
    Rpm,
}

impl fmt::Display for PackageFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PackageFamily::Deb => "deb",
            PackageFamily::Rpm => "rpm",
        })
    }
}

/// One distribution release and its glibc.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Distro {
    /// The glibc release it ships.
    pub glibc: Glibc,
    /// `debian-11`, `almalinux-8`, …
    pub id: String,
    /// Its package manager family.
    pub family: PackageFamily,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DistroTable {
    format: u32,
    distro: Vec<Distro>,
}

/// Every distribution in the shipped table. The table is part of the
/// binary and checked by a unit test, so a parse failure here is a build
/// defect; it then reads as empty (every baseline maps to `linux`) rather
/// than failing a user's command.
pub fn distros() -> &'static [Distro] {
    static TABLE: OnceLock<Vec<Distro>> = OnceLock::new();
    TABLE.get_or_init(|| match toml::from_str::<DistroTable>(DISTROS_TOML) {
        Ok(t) if t.format == 1 => t.distro,
        Ok(_) | Err(_) => {
            tracing::error!(
                "images/distros.toml does not parse; distro names fall back to `linux`"
            );
            Vec::new()
        }
    })
}

/// Errors about baselines.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GlibcError {
    /// Not `2.<n>`.
    #[error("invalid glibc baseline `{value}` (expected e.g. 2.31)")]
    BadBaseline {
        /// What was given.
        value: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_parse_and_order() {
        let a: Glibc = "2.28".parse().unwrap();
        let b: Glibc = "2.31".parse().unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "2.28");
        assert!("3.1".parse::<Glibc>().is_err());
        assert!("2".parse::<Glibc>().is_err());
        assert!("2.x".parse::<Glibc>().is_err());
    }

    #[test]
    fn distro_table_parses_and_names_every_builder_release() {
        let table = toml::from_str::<DistroTable>(DISTROS_TOML).unwrap();
        assert_eq!(table.format, 1);
        assert_eq!(distros().len(), table.distro.len());
        assert_eq!(Glibc::new(2, 31).distro_id(), "debian-11");
        assert_eq!(Glibc::new(2, 28).distro_id(), "almalinux-8");
        assert_eq!(
            Glibc::new(2, 17).distro().map(|d| d.family),
            Some(PackageFamily::Rpm)
        );
        assert_eq!(Glibc::new(2, 99).distro_id(), "linux");
    }

    #[test]
    fn serialises_as_a_string() {
        let g = Glibc::new(2, 36);
        assert_eq!(serde_json::to_string(&g).unwrap(), "\"2.36\"");
        let back: Glibc = serde_json::from_str("\"2.36\"").unwrap();
        assert_eq!(back, g);
        assert!(serde_json::from_str::<Glibc>("\"x\"").is_err());
    }
}
