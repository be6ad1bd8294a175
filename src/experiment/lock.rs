//! One whole-grid `repro run` at a time per study folder (shards share it, see [`StudyLock::acquire_shared`],
//! and lock each run with a [`RunLock`]): `<out>/<study>/.lock` is held with an exclusive `flock(2)`
//! while a study runs, and holds the holder's pid, host, start time and command line.
//!
//! A second process on the same folder is refused with the holder's details instead of training every run a
//! second time and interleaving `metrics.jsonl`. The kernel drops the lock when its process ends, however it
//! ends (`kill -9` included), so a lock file left by a dead process is stale by construction and is simply
//! taken over: no pid liveness guess, no pid-reuse hazard. The file itself stays (its content describes the
//! last holder); it is never the lock, only its label.
//!
//! Caveat: `flock` on a network file system is only as good as that file system's support for it.

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// Who holds (or last held) a study lock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    /// seconds since the Unix epoch
    pub since: u64,
    pub command: String,
}

impl Holder {
    fn me() -> Self {
        Self {
            pid: std::process::id(),
            host: hostname(),
            since: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            command: std::env::args().collect::<Vec<_>>().join(" "),
        }
    }

    fn describe(&self) -> String {
        let now = Holder::me().since;
        let ago = now.saturating_sub(self.since);
        format!("pid {} on host {}, started {ago} s ago: `{}`", self.pid, self.host, self.command)
    }
}

/// The host name (`gethostname(2)`), or `unknown`.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// A held study lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StudyLock {
    file: File,
    pub path: PathBuf,
}

/// Opens `path` (creating it) and tries `flock(mode | LOCK_NB)`: `Ok(Ok(file))` when taken (the holder label
/// is then rewritten to this process), `Ok(Err(who))` when another holder has it.
fn try_flock(path: &Path, mode: libc::c_int) -> Result<std::result::Result<File, String>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("opening the lock {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), mode | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let who = serde_json::from_str::<Holder>(&text)
                .map(|h| h.describe())
                .unwrap_or_else(|_| "another process (its details are not written yet)".into());
            return Ok(Err(who));
        }
        return Err(anyhow!("{}: cannot lock: {err}", path.display()));
    }
    // ours now: whatever the file says is a previous holder (or, for a shared lock, another holder)
    let me = serde_json::to_string(&Holder::me())?;
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(me.as_bytes())?;
    file.flush()?;
    Ok(Ok(file))
}

impl StudyLock {
    /// Takes the lock of the study folder `dir` (which must exist) exclusively, or says who holds it: a
    /// `repro run` of the whole grid.
    pub fn acquire(dir: &Path) -> Result<Self> {
        Self::take(dir, libc::LOCK_EX)
    }

    /// Takes the study lock shared: a `repro run` of part of the grid (`--only`, `--seeds`, `--shard`), so that
    /// several such processes write one study folder together, each run guarded by its own [`RunLock`], while
    /// a whole-grid run (exclusive) still excludes them all.
    pub fn acquire_shared(dir: &Path) -> Result<Self> {
        Self::take(dir, libc::LOCK_SH)
    }

    fn take(dir: &Path, mode: libc::c_int) -> Result<Self> {
        let path = dir.join(".lock");
        match try_flock(&path, mode)? {
            Ok(file) => Ok(Self { file, path }),
            Err(who) => Err(anyhow!(
                "{}: another `repro run` is writing this study ({who}); wait for it to finish, or use another --out",
                dir.display()
            )),
        }
    }

    /// The holder recorded in a study folder's lock file, if any (whether or not it still holds it).
    pub fn recorded_holder(dir: &Path) -> Option<Holder> {
        serde_json::from_str(&std::fs::read_to_string(dir.join(".lock")).ok()?).ok()
    }
}

/// One run's lock: `runs/<row>/.seed-<s>.lock` (beside the run folder, which `--fresh` may delete), held with
/// an exclusive `flock(2)` while the run trains, so that processes sharing a study folder (shards, Slurm tasks,
/// machines on a shared file system) never train one run twice. Released when dropped or when the process ends.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    pub path: PathBuf,
}

impl RunLock {
    /// The lock file of run folder `run_dir` (`…/runs/<row>/seed-<s>`).
    pub fn path_for(run_dir: &Path) -> PathBuf {
        let name = run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        run_dir.with_file_name(format!(".{name}.lock"))
    }

    /// Takes the run's lock, or returns who holds it (`Ok(Err(holder))`).
    pub fn try_acquire(run_dir: &Path) -> Result<std::result::Result<Self, String>> {
        let path = Self::path_for(run_dir);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        Ok(try_flock(&path, libc::LOCK_EX)?.map(|file| Self { file, path }))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // SAFETY: unlocking a file descriptor we own.
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

impl Drop for StudyLock {
    fn drop(&mut self) {
        // SAFETY: unlocking a file descriptor we own; closing it would release the lock as well.
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}
