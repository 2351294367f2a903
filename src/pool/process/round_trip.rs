//! The machine's raw pipe round trip: the floor under poolscope's own hand-off figure.

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The median of `samples` one-byte round trips through a child process over two pipes
/// (`cat`, which writes back each byte as it reads it): what a hand-off costs with nothing
/// of poolscope's in between. Blocking; takes a few milliseconds for a few hundred samples.
pub fn pipe_round_trip(samples: u32) -> io::Result<Duration> {
    if samples == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "at least one sample is needed",
        ));
    }
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let measured = measure(&mut child, samples);
    // Closing its stdin ends cat; kill it anyway should it linger.
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    let mut times = measured?;
    times.sort_unstable();
    Ok(times[times.len() / 2])
}

fn measure(child: &mut std::process::Child, samples: u32) -> io::Result<Vec<Duration>> {
    let (Some(input), Some(output)) = (child.stdin.as_mut(), child.stdout.as_mut()) else {
        return Err(io::Error::other("the child's pipes are missing"));
    };
    let mut byte = [0u8; 1];
    // One round trip first, unmeasured: the child's start-up is not a hand-off.
    input.write_all(b"x")?;
    output.read_exact(&mut byte)?;
    let mut times = Vec::with_capacity(samples as usize);
    for _ in 0..samples {
        let t = Instant::now();
        input.write_all(b"x")?;
        output.read_exact(&mut byte)?;
        times.push(t.elapsed());
    }
    Ok(times)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_round_trip_is_measured_through_a_real_child() {
        let rt = pipe_round_trip(200).unwrap();
        assert!(rt > Duration::ZERO);
        assert!(rt < Duration::from_millis(100), "{rt:?}");
        assert!(pipe_round_trip(0).is_err());
    }
}
