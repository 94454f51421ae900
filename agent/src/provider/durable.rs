//! Writes that survive a crash at any instant: the new bytes go to a temporary file in
//! the same folder, are flushed to disk, and replace the old file by a rename (atomic on
//! POSIX file systems); the folder is flushed too, so the rename itself is on disk. A
//! reader sees the old file or the new one, never a torn one.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Suffix of files being written; leftovers of a crash are removed by [`clean_partial`].
pub const PARTIAL_SUFFIX: &str = ".partial";

/// Replaces `path` with `bytes` atomically and durably.
///
/// Several writers may race on one path (two providers publishing the same checkpoint
/// to a shared folder): each writes its own temporary file, named by process and call,
/// so none truncates or renames away another's, and the last rename wins whole.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    let call = WRITES.fetch_add(1, Ordering::Relaxed);
    name.push(format!(".{}-{call}{PARTIAL_SUFFIX}", std::process::id()));
    let tmp = dir.join(name);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

/// Flushes a folder's entries (renames, creations, removals) to disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes the temporary files a crash mid-write left in `dir`.
pub fn clean_partial(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(PARTIAL_SUFFIX)
        {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_and_leaves_nothing_partial() {
        let dir = std::env::temp_dir().join(format!("ct-durable-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        // A crash between create and rename leaves a partial file: it is cleaned, the
        // committed file stays.
        fs::write(dir.join("state.json.partial"), b"tor").unwrap();
        clean_partial(&dir).unwrap();
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writers_racing_on_one_path_all_succeed_and_leave_it_whole() {
        let dir = std::env::temp_dir().join(format!("ct-durable-race-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let bytes = vec![7u8; 1 << 16];
        for attempt in 0..20 {
            let path = dir.join(format!("checkpoint-{attempt}"));
            let start = std::sync::Barrier::new(4);
            std::thread::scope(|s| {
                let writers: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            write_atomic(&path, &bytes)
                        })
                    })
                    .collect();
                for w in writers {
                    w.join().unwrap().expect("a racing writer fails");
                }
            });
            assert_eq!(fs::read(&path).unwrap(), bytes, "attempt {attempt}");
        }
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(PARTIAL_SUFFIX))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
