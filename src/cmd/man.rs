//! `poolscope man`: the man page. `clap_mangen` draws the title, synopsis and options; the
//! commands, the keys (from the key table), exit status, environment, files and examples are
//! added here, and no other page is referred to (poolscope installs only this one).

use std::fmt::Write as _;
use std::io::Write;

use clap::CommandFactory;
use poolscope::view::help::help_rows;

use crate::cli::Cli;

/// Writes the man page to stdout.
pub fn run() -> anyhow::Result<()> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    out.extend(sections(&cmd).into_bytes());
    man.render_version_section(&mut out)?;
    std::io::stdout().write_all(&out)?;
    Ok(())
}

/// Text fit for roff: backslashes doubled, a leading dot or quote kept from being a request.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\\\").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

fn tp(page: &mut String, term: &str, body: &str) {
    let _ = write!(page, ".TP\n\\fB{}\\fR\n{}\n", roff(term), roff(body));
}

/// The sections after the options.
fn sections(cmd: &clap::Command) -> String {
    let mut page = String::from(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
        tp(&mut page, &format!("poolscope {}", sub.get_name()), &about);
    }
    page.push_str(
        ".PP\nEach command has its own options: \\fBpoolscope\\fR \\fIcommand\\fR \\fB\\-\\-help\\fR.\n",
    );
    page.push_str(".SH KEYS\nIn the dashboard:\n");
    for (keys, help) in help_rows() {
        tp(&mut page, &keys, help);
    }
    page.push_str(
        ".SH EXIT STATUS\n.TP\n\\fB0\\fR\nThe run completed (tasks may have failed; see \\fB\\-\\-fail\\-on\\-error\\fR of \\fBlog\\fR).\n\
.TP\n\\fB1\\fR\nA runtime error, a bad recording, or with \\fB\\-\\-fail\\-on\\-error\\fR a failed task.\n\
.TP\n\\fB2\\fR\nA usage error: a bad option, scenario file or settings file.\n\
.TP\n\\fB128+n\\fR\nEnded by signal \\fIn\\fR (SIGINT, SIGTERM, SIGHUP, SIGQUIT).\n",
    );
    page.push_str(
        ".SH ENVIRONMENT\n.TP\n\\fBNO_COLOR\\fR\nSet and not empty: no colour (unless \\fB\\-\\-color always\\fR).\n\
.TP\n\\fBLC_ALL\\fR, \\fBLC_CTYPE\\fR, \\fBLANG\\fR\nThe first one set decides: not UTF\\-8 means ASCII drawing (as \\fB\\-\\-ascii\\fR), for the dashboard and \\fBsnapshot\\fR alike.\n\
.TP\n\\fBXDG_CONFIG_HOME\\fR\nWhere the settings file is (else \\fB$HOME/.config\\fR).\n\
.TP\n\\fBPOOLSCOPE_EVENTS\\fR\nSet by poolscope for a watched program: the FIFO its probe writes events to.\n\
.TP\n\\fBTERM\\fR\n\\fBdumb\\fR: the dashboard refuses to start and points to \\fBlog\\fR and \\fBsnapshot\\fR.\n",
    );
    page.push_str(
        ".SH FILES\n.TP\n\\fB$XDG_CONFIG_HOME/poolscope/config.toml\\fR\n\
Settings, read by every command (else \\fB~/.config/poolscope/config.toml\\fR); keys are the long option names, e.g. \\fBtheme = \"light\"\\fR, \\fBworkers = 4\\fR. Options on the command line win; \\fB\\-\\-config\\fR \\fIFILE\\fR reads another, \\fB\\-\\-no\\-config\\fR none; \\fBpoolscope config\\fR shows it.\n\
.TP\n\\fBpoolscope\\-run\\-*.json\\fR\nChrome traces written by \\fBe\\fR in the dashboard, in the current directory.\n",
    );
    page.push_str(".SH EXAMPLES\n");
    for (example, what) in [
        (
            "poolscope",
            "the dashboard: six 1-second tasks on three threads",
        ),
        (
            "poolscope -m process -w 4 -n 300 --workload mixed",
            "300 mixed tasks on four processes",
        ),
        (
            "poolscope -- python3 app.py",
            "watch a Python program's pools",
        ),
        (
            "poolscope --replay trace.json",
            "a recording (Chrome trace, Dask task stream, GNU parallel joblog)",
        ),
        ("poolscope log --format csv -n 20", "one CSV row per task"),
        (
            "poolscope snapshot --svg run.svg",
            "a picture of the final frame",
        ),
        (
            "poolscope config",
            "the settings file and the settings in effect",
        ),
    ] {
        tp(&mut page, example, what);
    }
    page
}
