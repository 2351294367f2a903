//! The `e` key: the run on screen written as a Chrome trace to a file of its own.

use std::fs::File;
use std::io::{self, BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::model::Run;

/// Names tried before giving up (`poolscope-run-1.json`, then `-2`…).
const NAMES_TRIED: u32 = 1000;

/// Creates a new file for run `run` in `dir`: `poolscope-run-N.json`, else the next free
/// `poolscope-run-N-2.json`… Created exclusively (`O_EXCL`), so an existing file is never
/// overwritten and a planted symlink, even a dangling one, is never followed.
pub fn create_export(dir: &Path, run: u32) -> io::Result<(PathBuf, File)> {
    for n in 1..=NAMES_TRIED {
        let name = if n == 1 {
            format!("poolscope-run-{run}.json")
        } else {
            format!("poolscope-run-{run}-{n}.json")
        };
        let path = dir.join(name);
        match crate::output::create_new(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        ErrorKind::AlreadyExists,
        format!("{NAMES_TRIED} files named poolscope-run-{run}* exist already"),
    ))
}

/// Writes `run` to a new file in `dir` and returns the one-line notice saying where.
pub fn export_run(dir: &Path, run: &Run) -> String {
    let written = create_export(dir, run.id).and_then(|(path, file)| {
        let mut out = crate::trace::run_to_trace(run, BufWriter::new(file))?;
        out.flush()?;
        Ok(path)
    });
    match written {
        Ok(path) => format!(
            "trace of run {} written to {} (the last tasks of each lane)",
            run.id,
            path.display()
        ),
        Err(e) => format!("cannot export run {} to {}: {e}", run.id, dir.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("poolscope-export-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_planted_symlink_is_neither_followed_nor_replaced() {
        let dir = scratch("symlink");
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("poolscope-run-1.json")).unwrap();
        std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("poolscope-run-1-2.json"))
            .unwrap();
        let (path, mut file) = create_export(&dir, 1).unwrap();
        file.write_all(b"trace").unwrap();
        assert_eq!(path, dir.join("poolscope-run-1-3.json"));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(
            !dir.join("nowhere").exists(),
            "a dangling link is not followed"
        );
        let (again, _) = create_export(&dir, 1).unwrap();
        assert_eq!(again, dir.join("poolscope-run-1-4.json"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_place_is_one_line_naming_it() {
        let notice = export_run(Path::new("/nonexistent/dir"), &sample_run());
        assert!(
            notice.starts_with("cannot export run 1 to /nonexistent/dir: "),
            "{notice}"
        );
        assert_eq!(notice.lines().count(), 1);
    }

    fn sample_run() -> Run {
        let mut model = crate::model::Model::new();
        model.apply(&crate::event::PoolEvent {
            run: 1,
            at: std::time::Duration::ZERO,
            kind: crate::event::EventKind::RunStarted {
                config: crate::config::RunConfig::default(),
                coordinator_pid: 1,
                origin_ns: 0,
                source: Box::default(),
            },
        });
        model.run.unwrap()
    }
}
