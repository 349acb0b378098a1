//! The runner's TOML configuration: read once at start, every problem reported together.

use crate::template;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::{Table, Value};

pub const DEFAULT_PATH: &str = "/etc/trellis-runner.toml";
const DEFAULT_SPOOL: &str = "/var/spool/trellis-runner";
const DEFAULT_TREES: &str = "/usr/src/kernels/*";

/// Everything the `run` loop needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub conn: Connection,
    pub name: String,
    pub git: String,
    pub branch: Option<String>,
    pub command: String,
    pub timeout: Duration,
    pub parallel: usize,
    pub max_log_bytes: usize,
    pub compiler: String,
    pub trees: Vec<String>,
    pub provision: Option<String>,
    pub distro: Option<String>,
    /// Lease any kernel of these streams instead of announcing the host's trees.
    pub streams: Option<Vec<String>>,
    pub arch: Option<String>,
    pub spool_dir: PathBuf,
}

/// Where results go: all that `report` needs.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Base URL without a trailing slash; the API is under `/api/v1`.
    pub server: String,
    pub token: String,
    pub project: String,
}

/// Values given on the command line or in the environment; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub server: Option<String>,
    pub token: Option<String>,
    pub project: Option<String>,
}

/// Every problem found, one per line.
#[derive(Debug)]
pub struct ConfigError {
    pub source: String,
    pub problems: Vec<String>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}: {} problem(s):", self.source, self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

const TOP_KEYS: &[&str] = &[
    "server",
    "token",
    "token_file",
    "project",
    "name",
    "module",
    "build",
    "kernels",
    "spool",
];
const SECTIONS: &[(&str, &[&str])] = &[
    ("module", &["git", "branch"]),
    (
        "build",
        &[
            "command",
            "timeout",
            "parallel",
            "max_log_bytes",
            "compiler",
        ],
    ),
    (
        "kernels",
        &["trees", "provision", "distro", "streams", "arch"],
    ),
    ("spool", &["dir"]),
];

/// Reads fields out of the parsed file, noting each problem instead of stopping at the first.
struct Reader<'a> {
    root: &'a Table,
    problems: Vec<String>,
}

impl<'a> Reader<'a> {
    fn value(&self, section: Option<&str>, key: &str) -> Option<&'a Value> {
        match section {
            None => self.root.get(key),
            Some(s) => self.root.get(s)?.as_table()?.get(key),
        }
    }

    fn string(&mut self, section: Option<&str>, key: &str) -> Option<String> {
        let v = self.value(section, key)?;
        match v.as_str() {
            Some(s) if !s.trim().is_empty() => Some(s.to_string()),
            Some(_) => {
                self.problems
                    .push(format!("{}: must not be empty", field(section, key)));
                None
            }
            None => {
                self.problems.push(format!(
                    "{}: expected a string, found {}",
                    field(section, key),
                    v.type_str()
                ));
                None
            }
        }
    }

    fn integer(&mut self, section: Option<&str>, key: &str, min: i64, max: i64) -> Option<i64> {
        let v = self.value(section, key)?;
        match v.as_integer() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.problems.push(format!(
                    "{}: {n} is out of range ({min} to {max})",
                    field(section, key)
                ));
                None
            }
            None => {
                self.problems.push(format!(
                    "{}: expected an integer, found {}",
                    field(section, key),
                    v.type_str()
                ));
                None
            }
        }
    }

    fn strings(&mut self, section: Option<&str>, key: &str) -> Option<Vec<String>> {
        let v = self.value(section, key)?;
        let items = v.as_array().and_then(|a| {
            a.iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        });
        if items.is_none() {
            self.problems.push(format!(
                "{}: expected an array of strings",
                field(section, key)
            ));
        }
        items
    }

    fn problem(&mut self, section: Option<&str>, key: &str, what: impl std::fmt::Display) {
        self.problems
            .push(format!("{}: {what}", field(section, key)));
    }

    /// Unknown keys are refused: a misspelt optional key would otherwise be silently ignored.
    fn unknown_keys(&mut self) {
        for (key, value) in self.root {
            match SECTIONS.iter().find(|(s, _)| s == key) {
                Some((section, known)) => match value.as_table() {
                    Some(t) => {
                        for k in t.keys().filter(|k| !known.contains(&k.as_str())) {
                            self.problems.push(format!("{section}.{k}: unknown key"));
                        }
                    }
                    None => self.problems.push(format!("{section}: expected a table")),
                },
                None if !TOP_KEYS.contains(&key.as_str()) => {
                    self.problems.push(format!("{key}: unknown key"))
                }
                None => {}
            }
        }
    }
}

fn field(section: Option<&str>, key: &str) -> String {
    match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    }
}

/// Parses the file at `path`; a missing file is an empty configuration when `optional`.
fn read_table(path: &Path, optional: bool) -> Result<Table, ConfigError> {
    let fail = |p: String| ConfigError {
        source: path.display().to_string(),
        problems: vec![p],
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => return Ok(Table::new()),
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    };
    text.parse::<Table>()
        .map_err(|e| fail(format!("not valid TOML: {}", e.to_string().trim())))
}

/// The connection fields, from overrides first, then the file, then (token only) TRELLIS_TOKEN.
fn connection(r: &mut Reader<'_>, over: &Overrides, base: &Path) -> Option<Connection> {
    let server = over.server.clone().or_else(|| r.string(None, "server"));
    let server = match server {
        None => {
            r.problem(None, "server", "missing (the server's base URL)");
            None
        }
        Some(s) => match check_server(&s) {
            Ok(s) => Some(s),
            Err(e) => {
                r.problem(None, "server", e);
                None
            }
        },
    };

    let from_file = r.string(None, "token");
    let file = r.string(None, "token_file");
    let token = match (over.token.clone(), from_file, file) {
        (Some(t), _, _) => Some(t),
        (None, Some(_), Some(_)) => {
            r.problem(None, "token", "give token or token_file, not both");
            None
        }
        (None, Some(t), None) => Some(t),
        (None, None, Some(f)) => {
            let f = base.join(f);
            match std::fs::read_to_string(&f) {
                Ok(t) => Some(t.trim().to_string()),
                Err(e) => {
                    r.problem(
                        None,
                        "token_file",
                        format!("cannot read {}: {e}", f.display()),
                    );
                    None
                }
            }
        }
        (None, None, None) => match std::env::var("TRELLIS_TOKEN") {
            Ok(t) => Some(t),
            Err(_) => {
                r.problem(
                    None,
                    "token",
                    "missing (token, token_file or env TRELLIS_TOKEN)",
                );
                None
            }
        },
    };
    let token = token.and_then(|t| {
        let t = t.trim().to_string();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()) {
            Some(t)
        } else {
            r.problem(None, "token", "must be printable ASCII without spaces");
            None
        }
    });

    let project = over.project.clone().or_else(|| r.string(None, "project"));
    let project = match project {
        None => {
            r.problem(None, "project", "missing (the project's slug)");
            None
        }
        Some(p) if is_slug(&p) => Some(p),
        Some(p) => {
            r.problem(
                None,
                "project",
                format!("{p:?} is not a slug (lowercase letters, digits, . _ -; at most 64)"),
            );
            None
        }
    };
    Some(Connection {
        server: server?,
        token: token?,
        project: project?,
    })
}

fn check_server(s: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{s:?} is not an http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{s:?}: a base URL takes no query or fragment"));
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// The server's project slug rule.
pub fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
}

/// Loads what `report` needs. The file is optional unless `explicit`: flags and environment
/// may give everything.
pub fn load_connection(
    path: &Path,
    explicit: bool,
    over: &Overrides,
) -> Result<Connection, ConfigError> {
    let complete = over.server.is_some() && over.token.is_some() && over.project.is_some();
    let root = if complete && !explicit {
        Table::new()
    } else {
        read_table(path, !explicit)?
    };
    let mut r = Reader {
        root: &root,
        problems: Vec::new(),
    };
    let conn = connection(&mut r, over, path.parent().unwrap_or(Path::new(".")));
    r.unknown_keys();
    match conn {
        Some(c) if r.problems.is_empty() => Ok(c),
        _ => Err(ConfigError {
            source: format!("flags, environment and {}", path.display()),
            problems: r.problems,
        }),
    }
}

/// Loads and checks the whole configuration of the `run` loop.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let root = read_table(path, false)?;
    parse(&root, path)
}

fn parse(root: &Table, path: &Path) -> Result<Config, ConfigError> {
    let mut r = Reader {
        root,
        problems: Vec::new(),
    };
    r.unknown_keys();
    let conn = connection(
        &mut r,
        &Overrides::default(),
        path.parent().unwrap_or(Path::new(".")),
    );

    let name = match r.string(None, "name") {
        Some(n) if valid_name(&n) => Some(n),
        Some(n) => {
            r.problem(
                None,
                "name",
                format!("{n:?}: use letters, digits, . _ - (at most 64)"),
            );
            None
        }
        None => Some(crate::report::hostname()),
    };

    let git = r.string(Some("module"), "git");
    if git.is_none() && r.value(Some("module"), "git").is_none() {
        r.problem(
            Some("module"),
            "git",
            "missing (URL or path of the module's repository)",
        );
    }
    let branch = r.string(Some("module"), "branch");
    if let Some(b) = &branch {
        if b.chars().any(|c| c.is_whitespace() || c.is_control()) || b.starts_with('-') {
            r.problem(
                Some("module"),
                "branch",
                format!("{b:?} is not a branch name"),
            );
        }
    }

    let command = r.string(Some("build"), "command");
    match &command {
        Some(c) => {
            if let Err(e) = template::check(c, template::BUILD_PLACEHOLDERS) {
                r.problem(Some("build"), "command", e);
            }
        }
        None if r.value(Some("build"), "command").is_none() => {
            r.problem(Some("build"), "command", "missing (the build command)")
        }
        None => {}
    }
    let timeout = match r.string(Some("build"), "timeout") {
        None => Some(Duration::from_secs(30 * 60)),
        Some(t) => match parse_duration(&t) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                r.problem(Some("build"), "timeout", "must be more than 0");
                None
            }
            Err(e) => {
                r.problem(Some("build"), "timeout", e);
                None
            }
        },
    };
    // The server leases at most 32 jobs per call.
    let parallel = r.integer(Some("build"), "parallel", 1, 32).unwrap_or(1) as usize;
    let max_log_bytes = r
        .integer(Some("build"), "max_log_bytes", 4096, 1 << 30)
        .unwrap_or(4 << 20) as usize;
    let compiler = r
        .string(Some("build"), "compiler")
        .unwrap_or_else(|| "gcc".to_string());

    let trees = r
        .strings(Some("kernels"), "trees")
        .unwrap_or_else(|| vec![DEFAULT_TREES.to_string()]);
    if trees.is_empty() {
        r.problem(Some("kernels"), "trees", "must name at least one glob");
    }
    for t in &trees {
        if let Err(e) = glob::Pattern::new(t) {
            r.problem(Some("kernels"), "trees", format!("{t:?}: {e}"));
        }
    }
    let provision = r.string(Some("kernels"), "provision");
    if let Some(p) = &provision {
        if let Err(e) = template::check(p, template::PROVISION_PLACEHOLDERS) {
            r.problem(Some("kernels"), "provision", e);
        }
    }
    let distro = r.string(Some("kernels"), "distro");
    if let Some(d) = &distro {
        if !is_slug(d) {
            r.problem(
                Some("kernels"),
                "distro",
                format!("{d:?} is not a stream slug"),
            );
        }
    }
    let streams = r.strings(Some("kernels"), "streams");
    match &streams {
        Some(list) if list.is_empty() => {
            r.problem(Some("kernels"), "streams", "must name at least one stream")
        }
        Some(list) => {
            for s in list.iter().filter(|s| !is_slug(s)) {
                r.problem(
                    Some("kernels"),
                    "streams",
                    format!("{s:?} is not a stream slug"),
                );
            }
            if provision.is_none() {
                r.problem(
                    Some("kernels"),
                    "streams",
                    "needs kernels.provision, to fetch the trees of the kernels it leases",
                );
            }
        }
        None => {}
    }
    let arch = r.string(Some("kernels"), "arch");
    match &arch {
        Some(a) if !is_slug(a) => {
            r.problem(Some("kernels"), "arch", format!("{a:?} is not an arch"))
        }
        Some(_) if streams.is_none() => {
            r.problem(Some("kernels"), "arch", "only goes with kernels.streams")
        }
        _ => {}
    }
    let spool_dir = PathBuf::from(
        r.string(Some("spool"), "dir")
            .unwrap_or_else(|| DEFAULT_SPOOL.to_string()),
    );

    if !r.problems.is_empty() {
        return Err(ConfigError {
            source: path.display().to_string(),
            problems: r.problems,
        });
    }
    // Every field is Some when there were no problems.
    let missing = || ConfigError {
        source: path.display().to_string(),
        problems: vec!["incomplete configuration".to_string()],
    };
    Ok(Config {
        conn: conn.ok_or_else(missing)?,
        name: name.ok_or_else(missing)?,
        git: git.ok_or_else(missing)?,
        branch,
        command: command.ok_or_else(missing)?,
        timeout: timeout.ok_or_else(missing)?,
        parallel,
        max_log_bytes,
        compiler,
        trees,
        provision,
        distro,
        streams,
        arch,
        spool_dir,
    })
}

/// A runner name goes into run ids and log lines.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

/// "90s", "30m", "2h", "1h30m", "1d"; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (like 90s, 30m, 2h, 1h30m)");
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total: u64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "s" | "sec" | "secs" => 1,
            "m" | "min" | "mins" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86400,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs(total))
}

/// A duration the way a person writes it: "45s", "30m", "1h30m".
pub fn show_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 {
        out.push_str(&format!("{sec}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(&text.parse::<Table>().unwrap(), Path::new("/etc/t.toml"))
    }

    const FULL: &str = r#"
server = "https://trellis.example.org/"
token = "trellis_abc"
project = "wireguard-linux-compat"
name = "el8-runner-1"
[module]
git = "https://git.zx2c4.com/wireguard-linux-compat"
branch = "master"
[build]
command = "make -C {kernel_dir} M={src}/src -j{jobs} modules"
timeout = "1h30m"
parallel = 2
max_log_bytes = 65536
compiler = "gcc-12"
[kernels]
trees = ["/usr/src/kernels/*", "/lib/modules/*/build"]
provision = "dnf download kernel-devel-{version} --destdir {dest}"
distro = "centos-stream-9"
[spool]
dir = "/var/spool/trellis-runner"
"#;

    #[test]
    fn a_full_file_parses() {
        let c = parse_str(FULL).unwrap();
        assert_eq!(c.conn.server, "https://trellis.example.org");
        assert_eq!(c.conn.token, "trellis_abc");
        assert_eq!(c.conn.project, "wireguard-linux-compat");
        assert_eq!(c.name, "el8-runner-1");
        assert_eq!(c.branch.as_deref(), Some("master"));
        assert_eq!(c.timeout, Duration::from_secs(5400));
        assert_eq!((c.parallel, c.max_log_bytes), (2, 65536));
        assert_eq!(c.compiler, "gcc-12");
        assert_eq!(c.trees.len(), 2);
        assert_eq!(c.distro.as_deref(), Some("centos-stream-9"));
        assert_eq!(c.spool_dir, PathBuf::from("/var/spool/trellis-runner"));
    }

    #[test]
    fn the_example_file_parses_with_its_provisioning_uncommented() {
        let text = include_str!("../trellis-runner.example.toml")
            .replace(
                "token_file = \"/etc/trellis-runner.token\"",
                "token = \"t\"",
            )
            .replace("# provision = ", "provision = ");
        let c = parse_str(&text).unwrap();
        assert!(c.provision.is_some());
        assert_eq!(
            c.command,
            "make -C {kernel_dir} M={src}/src -j{jobs} modules"
        );
    }

    #[test]
    fn defaults_fill_optional_fields() {
        let c = parse_str(
            "server = \"http://127.0.0.1:3000\"\ntoken = \"t\"\nproject = \"p\"\n\
             [module]\ngit = \"/srv/mod\"\n[build]\ncommand = \"make\"\n",
        )
        .unwrap();
        assert_eq!(c.timeout, Duration::from_secs(1800));
        assert_eq!((c.parallel, c.max_log_bytes), (1, 4 << 20));
        assert_eq!(c.trees, vec![DEFAULT_TREES.to_string()]);
        assert_eq!(c.compiler, "gcc");
        assert!(c.provision.is_none() && c.branch.is_none());
        assert!(!c.name.is_empty());
    }

    #[test]
    fn every_bad_field_is_reported_together() {
        let err = parse_str(
            r#"
server = "ftp://x"
token = "a b"
project = "Not A Slug"
colour = "blue"
[module]
branch = "has space"
[build]
command = "make -C {kdir} {src}"
timeout = "soon"
parallel = 0
max_log_bytes = "big"
[kernels]
trees = ["/usr/src/[kernels"]
provision = "get {uname} {where}"
[spool]
dri = "/tmp"
"#,
        )
        .unwrap_err();
        let all = err.problems.join("\n");
        for needle in [
            "server:",
            "token:",
            "project:",
            "colour: unknown key",
            "module.git: missing",
            "module.branch:",
            "build.command: unknown placeholder {kdir}",
            "build.timeout:",
            "build.parallel: 0 is out of range",
            "build.max_log_bytes: expected an integer",
            "kernels.trees:",
            "kernels.provision: unknown placeholder {where}",
            "spool.dri: unknown key",
        ] {
            assert!(all.contains(needle), "{needle:?} not in:\n{all}");
        }
        assert_eq!(err.problems.len(), 13, "{all}");
        assert!(err.to_string().starts_with("/etc/t.toml: 13 problem(s):"));
    }

    #[test]
    fn streams_need_provisioning_and_arch_needs_streams() {
        let c = parse_str(
            &format!("{FULL}streams = [\"el9\"]\narch = \"x86_64\"\n")
                .replace("[spool]\ndir = \"/var/spool/trellis-runner\"\n", ""),
        )
        .unwrap();
        assert_eq!(c.streams, Some(vec!["el9".to_string()]));
        assert_eq!(c.arch.as_deref(), Some("x86_64"));

        let base = FULL.replace("provision = ", "# provision = ");
        let err = parse_str(&base.replace("[spool]", "streams = [\"el9\", \"EL 8\"]\n[spool]"))
            .unwrap_err();
        let all = err.problems.join("\n");
        assert!(
            all.contains("kernels.streams: \"EL 8\" is not a stream slug"),
            "{all}"
        );
        assert!(
            all.contains("kernels.streams: needs kernels.provision"),
            "{all}"
        );
        let err = parse_str(&FULL.replace("[spool]", "arch = \"x86_64\"\n[spool]")).unwrap_err();
        assert_eq!(
            err.problems,
            ["kernels.arch: only goes with kernels.streams"]
        );
    }

    #[test]
    fn unknown_placeholder_is_refused() {
        let err = parse_str(&FULL.replace("{jobs}", "{cores}")).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert!(err.problems[0].contains("{cores}"), "{:?}", err.problems);
    }

    #[test]
    fn connection_from_overrides_needs_no_file() {
        let over = Overrides {
            server: Some("http://127.0.0.1:9".into()),
            token: Some("t".into()),
            project: Some("demo".into()),
        };
        let c = load_connection(Path::new("/nonexistent/x.toml"), false, &over).unwrap();
        assert_eq!(
            (c.server.as_str(), c.project.as_str()),
            ("http://127.0.0.1:9", "demo")
        );
        assert!(load_connection(Path::new("/nonexistent/x.toml"), true, &over).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("m").is_err() && parse_duration("5 parsecs").is_err());
        assert_eq!(show_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(show_duration(Duration::from_secs(1)), "1s");
    }
}
