//! Package URLs (purl) for the things hermetic records: Python
//! distributions, distro packages and container images. The SBOM and the
//! SLSA provenance name the same things, so both build their purls here.

use crate::bundle::OsPackage;

/// Percent-encodes a purl segment, version or qualifier value: everything
/// but unreserved characters (RFC 3986), so Debian versions like
/// `1:2.0+dfsg` and URLs in qualifiers survive.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `pkg:pypi/<name>@<version>`; `name` must already be PEP 503 normalised.
pub fn pypi(normalized_name: &str, version: &str) -> String {
    format!("pkg:pypi/{}@{}", enc(normalized_name), enc(version))
}

/// `pkg:deb/debian/<name>@<version>?arch=<arch>&distro=debian-11` (or
/// `pkg:rpm/…`): the namespace is the distro string up to its first `-`.
pub fn os_package(package: &OsPackage, distro: &str) -> String {
    let namespace = distro.split('-').next().unwrap_or(distro);
    format!(
        "pkg:{}/{}/{}@{}?arch={}&distro={}",
        enc(&package.kind),
        enc(namespace),
        enc(&package.name),
        enc(&package.version),
        enc(&package.arch),
        enc(distro)
    )
}

/// A container image as a purl, from its reference and image ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciImage<'a> {
    /// `registry/repo` without tag or digest.
    pub repository: &'a str,
    /// `sha256:…`: the repository digest of a pinned reference, else the
    /// image ID (a local tag has nothing better).
    pub digest: &'a str,
    /// The package URL: `pkg:oci/<name>@<digest>?repository_url=<repo>`, plus `&tag=<tag>` when the reference had one.
    pub purl: String,
}

/// `pkg:oci/<last path part>@<digest>?repository_url=<repo>[&tag=<tag>]`.
pub fn oci_image<'a>(reference: &'a str, image_id: &'a str) -> OciImage<'a> {
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, digest),
        None => (reference, image_id),
    };
    let (repository, tag) = split_tag(name);
    let last = repository.rsplit('/').next().unwrap_or(repository);
    let mut purl = format!(
        "pkg:oci/{}@{}?repository_url={}",
        enc(last),
        enc(digest),
        enc(repository)
    );
    if let Some(tag) = tag {
        purl.push_str(&format!("&tag={}", enc(tag)));
    }
    OciImage {
        repository,
        digest,
        purl,
    }
}

/// `registry:5000/repo:tag` → (`registry:5000/repo`, Some(`tag`)).
pub fn split_tag(name: &str) -> (&str, Option<&str>) {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(colon) => (&name[..slash + colon], Some(&name[slash + colon + 1..])),
        None => (name, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tags_split_after_the_last_slash() {
        assert_eq!(split_tag("reg:5000/a/b:t"), ("reg:5000/a/b", Some("t")));
        assert_eq!(split_tag("reg:5000/a/b"), ("reg:5000/a/b", None));
    }

    #[test]
    fn values_are_percent_encoded() {
        assert_eq!(enc("1:2.0+dfsg-1"), "1%3A2.0%2Bdfsg-1");
    }

    #[test]
    fn purls_for_each_kind() {
        assert_eq!(pypi("pyyaml", "6.0.1"), "pkg:pypi/pyyaml@6.0.1");
        let deb = OsPackage {
            name: "libyaml-dev".into(),
            version: "0.2.2-1".into(),
            arch: "amd64".into(),
            kind: "deb".into(),
        };
        assert_eq!(
            os_package(&deb, "debian-11"),
            "pkg:deb/debian/libyaml-dev@0.2.2-1?arch=amd64&distro=debian-11"
        );
        let pinned = oci_image("quay.io/pypa/manylinux_2_28_x86_64@sha256:ab", "sha256:cd");
        assert_eq!(pinned.digest, "sha256:ab");
        assert_eq!(
            pinned.purl,
            "pkg:oci/manylinux_2_28_x86_64@sha256%3Aab?repository_url=quay.io%2Fpypa%2Fmanylinux_2_28_x86_64"
        );
        let local = oci_image("hermetic/builder:glibc2.31-x", "sha256:cd");
        assert_eq!(local.digest, "sha256:cd");
        assert!(local.purl.ends_with("&tag=glibc2.31-x"), "{}", local.purl);
    }
}
