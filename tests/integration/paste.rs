//! A big paste into the dashboard on a real terminal (a pty from util-linux `script`): taken
//! as a paste, never as thousands of keystrokes (issue 22.11).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::exe;

/// The dashboard on a pty in `dir`; `input` is written to it once it has taken the terminal;
/// returns whether it was still running afterwards, and the exports it wrote.
fn paste_into_dashboard(what: &str, input: Vec<u8>) -> Option<(bool, usize)> {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: `script` is not installed, so no pty");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("poolscope-paste-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cmd = format!(
        "stty rows 40 cols 120; TERM=xterm-256color exec {} --no-config -n 2 --task-ms 1",
        exe().display()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let screen = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = Arc::clone(&screen);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16384];
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    // Bracketed paste switched on: the dashboard holds the terminal.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !screen
        .lock()
        .unwrap()
        .windows(8)
        .any(|w| w == b"\x1b[?2004h")
    {
        assert!(
            Instant::now() < deadline,
            "the dashboard never took the terminal"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
        let _ = stdin.flush();
        stdin
    });
    let mut stdin = writer.join().unwrap();
    // The terminal passes the paste on at its own pace: wait until the screen has been still
    // for a second (everything taken in and drawn), so the q below is not part of it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (0, Instant::now());
    while last.1.elapsed() < Duration::from_secs(1) && Instant::now() < deadline {
        let len = screen.lock().unwrap().len();
        if len != last.0 {
            last = (len, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let alive = child.try_wait().unwrap().is_none();
    // A q that comes while the paste is still streaming in is part of it; once the paste is
    // over, one q quits.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the dashboard did not quit on q");
        }
        let _ = stdin.write_all(b"q");
        let _ = stdin.flush();
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(stdin);
    let exports = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref().is_ok_and(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("poolscope-run-")
            })
        })
        .count();
    std::fs::remove_dir_all(&dir).unwrap();
    Some((alive, exports))
}

#[test]
fn a_2_mb_bracketed_paste_is_a_paste_not_keys() {
    let mut input = b"\x1b[200~".to_vec();
    input.extend("erqK".repeat(512 * 1024).bytes());
    input.extend_from_slice(b"\x1b[201~");
    let Some((alive, exports)) = paste_into_dashboard("bracketed", input) else {
        return;
    };
    assert!(alive, "the paste's q did not quit");
    assert_eq!(exports, 0, "the paste's e wrote no export");
}

#[test]
fn a_2_mb_unbracketed_burst_of_e_writes_at_most_one_export() {
    let Some((alive, exports)) = paste_into_dashboard("raw", "e".repeat(2 << 20).into_bytes())
    else {
        return;
    };
    assert!(alive);
    assert!(exports <= 1, "{exports} exports");
}
