//! `{name}` placeholders in configured shell commands: checking which names a command uses and
//! filling them in.

/// The placeholders a build command may use.
pub const BUILD_PLACEHOLDERS: &[&str] = &["kernel_dir", "uname", "src", "sha", "jobs", "version"];

/// The placeholders a provisioning command may use.
pub const PROVISION_PLACEHOLDERS: &[&str] = &["uname", "version", "dest", "arch", "package_url"];

/// Every `{name}` in `template`, in order of appearance. `{{` and `}}` stand for literal braces,
/// so a shell `${CC}` must be written `${{CC}}`.
fn names(template: &str) -> Result<Vec<&str>, String> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            rest = &tail[2..];
        } else if tail.starts_with('}') {
            return Err("a lone `}` (write `}}` for a literal brace)".to_string());
        } else {
            let Some(end) = tail.find('}') else {
                return Err("a `{` without its `}` (write `{{` for a literal brace)".to_string());
            };
            found.push(&tail[1..end]);
            rest = &tail[end + 1..];
        }
    }
    Ok(found)
}

/// Problems with `template` given the names it may use: every unknown placeholder is named.
pub fn check(template: &str, allowed: &[&str]) -> Result<(), String> {
    let found = names(template)?;
    let mut unknown: Vec<String> = Vec::new();
    for name in found.into_iter().filter(|n| !allowed.contains(n)) {
        let shown = format!("{{{name}}}");
        if !unknown.contains(&shown) {
            unknown.push(shown);
        }
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "unknown placeholder{} {} (known: {}; write `{{{{` and `}}}}` for literal braces)",
            if unknown.len() == 1 { "" } else { "s" },
            unknown.join(", "),
            allowed
                .iter()
                .map(|n| format!("{{{n}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// `template` with each `{name}` replaced by its value. The template was checked at start, so
/// an unknown name here is a bug: it is left as it is rather than guessed.
pub fn expand(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        let end = if tail.starts_with('{') {
            tail.find('}')
        } else {
            None
        };
        match end {
            Some(end) => {
                let name = &tail[1..end];
                match values.iter().find(|(n, _)| *n == name) {
                    Some((_, v)) => out.push_str(v),
                    None => out.push_str(&tail[..=end]),
                }
                rest = &tail[end + 1..];
            }
            None => {
                out.push_str(&tail[..1]);
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_every_placeholder_and_literal_braces() {
        let cmd =
            "make -C {kernel_dir} M={src}/src -j{jobs} KVER={uname} V={version} # {sha} ${{CC}}";
        assert_eq!(check(cmd, BUILD_PLACEHOLDERS), Ok(()));
        let out = expand(
            cmd,
            &[
                ("kernel_dir", "/usr/src/kernels/5.14.0-1.el9.x86_64"),
                ("src", "/spool/work/r1/src"),
                ("jobs", "4"),
                ("uname", "5.14.0-1.el9.x86_64"),
                ("version", "5.14.0-1.el9"),
                ("sha", "abc"),
            ],
        );
        assert_eq!(
            out,
            "make -C /usr/src/kernels/5.14.0-1.el9.x86_64 M=/spool/work/r1/src/src -j4 \
             KVER=5.14.0-1.el9.x86_64 V=5.14.0-1.el9 # abc ${CC}"
        );
    }

    #[test]
    fn unknown_placeholders_are_named() {
        let err = check("make {kdir} {src} {arch}", BUILD_PLACEHOLDERS).unwrap_err();
        assert!(err.contains("{kdir}") && err.contains("{arch}"), "{err}");
        assert!(!err.starts_with("unknown placeholder {src}"), "{err}");
        assert!(check("echo ${CC}", BUILD_PLACEHOLDERS).is_err());
        assert!(check("echo }", BUILD_PLACEHOLDERS).is_err());
        assert_eq!(check("fetch {dest} {arch}", PROVISION_PLACEHOLDERS), Ok(()));
    }
}
