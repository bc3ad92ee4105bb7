//! The config file written as the console saves it: a timestamped backup
//! beside it first (`wxgate.toml.bak-20261202T011804Z`, `-2` … when one
//! second holds several), then the new text into a temporary file in the
//! same directory with the file's permissions, synced, and renamed over
//! it: a reader (or a crash) sees the old file or the new one, never half.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One backup beside the config file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Backup {
    /// Its id: the part of its name after `.bak-`.
    pub id: String,
    /// When it was made, `2026-12-02 01:18:04 UTC`.
    pub at: String,
    /// Its size in bytes.
    pub bytes: u64,
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "wxgate.toml".into())
}

fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// `20261202T011804Z` for Unix seconds `now`.
pub fn stamp(now: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(now);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

/// Year, month, day, hour, minute, second of Unix seconds (UTC).
fn civil(now: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = now.div_euclid(86_400);
    let secs = now.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
}

/// A backup id is a stamp, maybe with `-N`: nothing that leaves the directory.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'T' || b == b'Z' || b == b'-')
}

/// The path of backup `id` of `config`.
pub fn backup_path(config: &Path, id: &str) -> Option<PathBuf> {
    valid_id(id).then(|| dir_of(config).join(format!("{}.bak-{id}", name_of(config))))
}

fn readable(id: &str) -> String {
    let (date, rest) = id.split_at(id.len().min(8));
    let time = rest.trim_start_matches('T');
    if date.len() == 8 && time.len() >= 6 {
        format!(
            "{}-{}-{} {}:{}:{} UTC",
            &date[..4],
            &date[4..6],
            &date[6..],
            &time[..2],
            &time[2..4],
            &time[4..6]
        )
    } else {
        id.to_owned()
    }
}

/// The sort key of an id: its stamp, then its `-N`.
fn order(id: &str) -> (String, u32) {
    match id.split_once("Z-") {
        Some((stamp, n)) => (stamp.to_owned(), n.parse().unwrap_or(0)),
        None => (id.trim_end_matches('Z').to_owned(), 1),
    }
}

/// The backups of `config`, newest first.
pub fn backups(config: &Path) -> Vec<Backup> {
    let prefix = format!("{}.bak-", name_of(config));
    let Ok(entries) = fs::read_dir(dir_of(config)) else {
        return Vec::new();
    };
    let mut found: Vec<Backup> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_prefix(&prefix)?.to_owned();
            valid_id(&id).then(|| Backup {
                at: readable(&id),
                bytes: e.metadata().map(|m| m.len()).unwrap_or(0),
                id,
            })
        })
        .collect();
    found.sort_by_key(|b| std::cmp::Reverse(order(&b.id)));
    found
}

/// Copies `config` to a new backup stamped `now`; its id.
pub fn back_up(config: &Path, now: i64) -> std::io::Result<String> {
    let base = stamp(now);
    let mut n = 1;
    loop {
        let id = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let path = dir_of(config).join(format!("{}.bak-{id}", name_of(config)));
        if !path.exists() {
            // fs::copy keeps the permissions (a file with secrets stays 0600).
            fs::copy(config, &path)?;
            return Ok(id);
        }
        n += 1;
    }
}

/// Removes all but the newest `keep` backups.
pub fn prune(config: &Path, keep: usize) {
    for old in backups(config).into_iter().skip(keep) {
        if let Some(path) = backup_path(config, &old.id) {
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(error = %e, backup = %old.id, "cannot remove an old config backup");
            }
        }
    }
}

/// Writes `text` over `config` atomically (temporary file, sync, rename).
/// A symbolic link is followed: the file it names is replaced, the link
/// stays.
pub fn write_atomically(config: &Path, text: &str) -> std::io::Result<()> {
    let resolved = fs::canonicalize(config).unwrap_or_else(|_| config.to_owned());
    let config = resolved.as_path();
    let dir = dir_of(config);
    let tmp = dir.join(format!(
        ".{}.console-{:016x}.tmp",
        name_of(config),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        if let Ok(meta) = fs::metadata(config) {
            file.set_permissions(meta.permissions())?;
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, config)?;
        // The rename itself is durable once the directory is synced.
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_calendar_times() {
        assert_eq!(stamp(0), "19700101T000000Z");
        assert_eq!(stamp(1_750_000_000), "20250615T150640Z");
        assert_eq!(stamp(951_782_400), "20000229T000000Z");
        assert_eq!(readable("20250615T143320Z-2"), "2025-06-15 14:33:20 UTC");
    }

    #[test]
    fn backups_are_listed_newest_first_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("wxgate.toml");
        fs::write(&config, "a").unwrap();
        let first = back_up(&config, 100).unwrap();
        let second = back_up(&config, 100).unwrap();
        let third = back_up(&config, 200).unwrap();
        assert_eq!(second, format!("{first}-2"));
        let ids: Vec<_> = backups(&config).into_iter().map(|b| b.id).collect();
        assert_eq!(ids, vec![third.clone(), second.clone(), first]);
        prune(&config, 2);
        let ids: Vec<_> = backups(&config).into_iter().map(|b| b.id).collect();
        assert_eq!(ids, vec![third, second]);
        assert!(backup_path(&config, "../x").is_none());
        write_atomically(&config, "b").unwrap();
        assert_eq!(fs::read_to_string(&config).unwrap(), "b");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            3,
            "no temporary file left"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_config_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.toml");
        let link = dir.path().join("wxgate.toml");
        fs::write(&real, "a").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomically(&link, "b").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&real).unwrap(), "b");
    }
}
